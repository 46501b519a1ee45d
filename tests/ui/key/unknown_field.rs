use cache_runtime::cached;

struct User {
    id: u64,
}

#[cached(key = "user:{user.idd}")]
async fn get(user: &User) -> u64 {
    user.id
}

fn main() {
    let _ = get(&User { id: 1 });
}
