use cache_runtime::cached;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Product {
    id: u64,
}

struct Db;

struct User {
    id: u64,
}

#[cached(ttl = 600, key = "product:{id}")]
async fn by_template(id: u64) -> Result<Product, String> {
    Ok(Product { id })
}

#[cached(ttl = "1h30m", skip(db))]
async fn hashed(db: &Db, id: u64, _: u8) -> Option<Product> {
    let _ = db;
    Some(Product { id })
}

#[cached(ttl = "short", key = "user:{user.id}", cache_none)]
async fn field(user: &User) -> Option<u64> {
    Some(user.id)
}

#[cached(key = "pair:{a}:{b}")]
async fn pattern((a, b): (u32, u32)) -> u32 {
    a + b
}

#[cached(ttl = 5)]
async fn unit_return(id: u64) {
    let _ = id;
}

#[cached(ttl = 5)]
async fn nested(id: u64) -> Result<Vec<Option<Product>>, std::io::Error> {
    Ok(vec![Some(Product { id })])
}

struct Repo {
    tenant: String,
}

impl Repo {
    #[cached(name = "repo::get", key = "t:{self.tenant}:{id}", skip(self))]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {
    let _ = by_template(1);
    let _ = hashed(&Db, 1, 0);
    let _ = field(&User { id: 1 });
    let _ = pattern((1, 2));
    let _ = unit_return(1);
    let _ = nested(1);
    let _ = Repo {
        tenant: String::new(),
    }
    .get(1);
}
