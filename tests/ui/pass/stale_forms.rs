// `stale` and `early_refresh` in their forms: borrowed arguments (copied
// with `ToOwned`), `mut` parameters, a hashed key, a generic function,
// methods on `&self` and on `self: Arc<Self>`, a generic method, with tags
// and `none_ttl`; arguments only the key or the cache expression reads. No
// warning in what the macro writes.
#![deny(warnings)]
use cache_runtime::{cached, Cache};
use std::sync::Arc;

#[cached(ttl = "5m", stale = "1h", key = "rates:{currency}")]
async fn rates(currency: &str, raw: &[u8], mut scale: u32) -> Result<u64, String> {
    scale += 1;
    Ok(currency.len() as u64 + raw.len() as u64 + u64::from(scale))
}

#[cached(ttl = 60, stale = 60)]
async fn hashed(ids: Vec<u64>, label: String) -> usize {
    ids.len() + label.len()
}

#[cached(ttl = 60, stale = 60)]
async fn generic<T: serde::Serialize + Clone + Send + Sync + 'static>(item: T) -> u32 {
    let _ = item;
    1
}

#[cached(ttl = 60, early_refresh, beta = 2.0, key = "by:{name}", cache = cache)]
async fn key_only(cache: &Cache, name: &str, id: u64) -> u64 {
    id
}

#[cached(ttl = 60, stale = 60, key = "trimmed:{name}")]
async fn trimmed(mut name: &str) -> usize {
    name = name.trim();
    name.len()
}

#[derive(Clone)]
struct Repo {
    base: u64,
}

impl Repo {
    #[cached(ttl = 60, stale = "10m", key = "repo:{id}", tags = ["repo"], none_ttl = 5)]
    async fn find(&self, id: u64) -> Option<u64> {
        Some(self.base + id)
    }

    #[cached(ttl = 60, stale = "10m", key = "arc:{id}")]
    async fn shared(self: Arc<Self>, id: u64) -> u64 {
        self.base + id
    }

    #[cached(ttl = 60, stale = 60, key = "typed_self:{id}")]
    async fn typed_self(self: &Self, id: u64) -> u64 {
        self.base + id
    }

    #[cached(ttl = 60, stale = 5, key = "gen:{id}")]
    async fn typed<T: Default + serde::Serialize + serde::de::DeserializeOwned + Send + 'static>(
        &self,
        id: u64,
    ) -> T {
        let _ = (self.base, id);
        T::default()
    }
}

fn main() {
    let repo = Repo { base: 1 };
    let _ = rates("eur", b"x", 1);
    let _ = hashed(vec![1], "l".into());
    let _ = generic(5u8);
    let _ = repo.find(1);
    let _ = Arc::new(repo.clone()).shared(1);
    let _ = repo.typed::<u64>(1);
    let cache = Cache::builder().build().unwrap();
    let _ = key_only(&cache, "n", 1);
    let _ = trimmed(" n ");
    let _ = repo.typed_self(1);
}
