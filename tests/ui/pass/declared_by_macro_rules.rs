// `#[cached]` written inside a `macro_rules!`, with the signature's tokens
// coming from the macro's caller: the expansion's own locals must still
// resolve (hygiene).
use cache_runtime::cached;

macro_rules! getter {
    ($name:ident, $param:ident: $arg:ty => $ret:ty) => {
        #[cached(ttl = 60)]
        async fn $name($param: $arg) -> $ret {
            Some($param)
        }
    };
}

getter!(get, id: u64 => Option<u64>);

fn main() {
    let _ = get(1);
}
