// `#[cache_put]` and `#[cache_evict]` in their forms, and the companions of
// `#[cached]` called.
use cache_runtime::{cache_evict, cache_put, cached, Cache};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
struct Product {
    id: u64,
    slug: String,
    category: String,
}

#[cached(ttl = 60, key = "product:{id}", tags = ["products", "category:{category}"])]
async fn product(id: u64, category: &str) -> Option<Product> {
    let _ = (id, category);
    None
}

#[cached(skip(db))]
async fn search(db: &(), query: String, mut page: u32) -> Vec<u64> {
    let _ = db;
    page += 1;
    vec![u64::from(page); query.len()]
}

#[cache_put(key = "product:{product.id}", ttl = "1h", tags = ["category:{product.category}"])]
async fn save(product: Product) -> Result<Product, String> {
    Ok(product)
}

#[cache_put(key = "maybe:{id}", cache_none)]
async fn maybe(id: u64) -> Option<u64> {
    id.checked_sub(1)
}

#[cache_evict(keys = ["product:{p.id}", "product:slug:{p.slug}"], tags = ["products"], pattern = "list:{p.category}:*")]
async fn delete(p: &Product) -> Result<(), String> {
    let _ = p;
    Ok(())
}

#[cache_evict(key = "product:{id}", before)]
async fn forget(id: u64) {
    let _ = id;
}

// Nothing is stored: an `impl Trait` result is fine.
#[cache_evict(key = "product:{id}")]
async fn describe(id: u64) -> impl std::fmt::Display {
    id
}

struct Service {
    cache: Cache,
    tenant: String,
}

impl Service {
    #[cache_put(cache = self.cache, key = "t:{self.tenant}:{id}")]
    async fn refresh(&self, id: u64) -> u64 {
        id
    }

    #[cache_evict(cache = self.cache, key = "t:{self.tenant}:{id}", name = "service::drop")]
    async fn drop_one(&mut self, id: u64) -> Option<u64> {
        Some(id)
    }

    #[cached(cache = self.cache, key = "t:{self.tenant}:{id}")]
    async fn get(&self, id: u64) -> u64 {
        id
    }
}

async fn all(service: &mut Service, p: Product) {
    let _ = product(1, "lamps").await;
    let _ = product_uncached(1, "lamps").await;
    let _: Result<bool, cache_runtime::CacheError> = product_invalidate(1, "lamps").await;
    let _ = search_invalidate(&(), "q".into(), 1).await;
    let _ = save(p.clone()).await;
    let _ = maybe(1).await;
    let _ = delete(&p).await;
    forget(1).await;
    let _ = describe(1).await.to_string();
    let _ = service.refresh(1).await;
    let _ = service.drop_one(1).await;
    let _ = service.get_invalidate(1).await;
    let _ = service.get_uncached(1).await;
}

fn main() {
    let _ = all;
}
