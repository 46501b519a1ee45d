// Signatures that must keep compiling: a borrowed error type (only `Ok` is
// stored), an inner attribute, the Rust ABI written out, a raw identifier,
// `impl Serialize` and generic arguments, a body that is one diverging call.
use cache_runtime::cached;
use serde::de::DeserializeOwned;
use serde::Serialize;

#[cached(ttl = 60, key = "p:{id}")]
async fn checked(id: u64) -> Result<u64, &'static str> {
    if id == 0 {
        return Err("zero");
    }
    Ok(id)
}

#[cached(key = "inner:{n}")]
async fn inner_attribute(n: u32) -> u32 {
    #![allow(clippy::identity_op)]
    n + 0
}

#[cached]
async extern "Rust" fn rust_abi(n: u32) -> u32 {
    n
}

#[cached]
async fn r#match(n: u32) -> bool {
    n == 1
}

#[cached]
async fn serialized(value: impl Serialize + Send) -> u64 {
    let _ = value;
    1
}

#[cached(skip(label))]
async fn generic<'a, T>(label: &'a str, value: T) -> T
where
    T: Serialize + DeserializeOwned + Send,
{
    let _ = label;
    value
}

#[cached]
async fn unfinished(n: u32) -> u32 {
    todo!("{n}")
}

fn main() {
    let _ = checked(1);
    let _ = inner_attribute(1);
    let _ = rust_abi(1);
    let _ = r#match(1);
    let _ = serialized(1);
    let _ = generic("x", 1u8);
    let _ = unfinished(1);
}
