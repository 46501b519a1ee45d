//! The shop's queries, each a plain `async fn` with its caching one
//! attribute above it. The handlers in `http` call these and nothing else
//! reads the database's products, pages, totals or profiles.

use crate::db::{Db, DbError};
use crate::model::{OrderStats, Product, Profile};
use cache_runtime::{cache_evict, cache_put, cached};

/// One product; `None` (also cached: ids are never created) for an unknown id.
#[cached(ttl = "1h", key = "product:{id}", tags = ["products"])]
pub async fn product(db: &Db, id: i64) -> Result<Option<Product>, DbError> {
    db.product(id).await
}

/// A page of products, by id.
#[cached(ttl = "5m", key = "products:list:{skip}:{limit}", tags = ["product_pages"])]
pub async fn products_page(db: &Db, skip: i64, limit: i64) -> Result<Vec<Product>, DbError> {
    db.products_page(skip, limit).await
}

/// Stores the product, and the cache with it (the next read is a hit on the
/// new value); every cached page goes, since any of them may list it: the
/// pages are tagged, so this removes just them. `None` if no product has
/// its id.
#[cache_evict(tags = ["product_pages"])]
#[cache_put(ttl = "1h", key = "product:{product.id}", tags = ["products"])]
pub async fn save_product(db: &Db, product: Product) -> Result<Option<Product>, DbError> {
    store(db, product).await
}

/// [`save_product`], removing the pages by their keys' pattern instead
/// (`SHOP_PAGE_EVICTION=pattern`): a `SCAN` of the whole keyspace per
/// update, kept to measure the two against (BENCHMARKS.md).
#[cache_evict(pattern = "products:list:*")]
#[cache_put(ttl = "1h", key = "product:{product.id}", tags = ["products"])]
pub async fn save_product_evicting_by_pattern(
    db: &Db,
    product: Product,
) -> Result<Option<Product>, DbError> {
    store(db, product).await
}

async fn store(db: &Db, product: Product) -> Result<Option<Product>, DbError> {
    Ok(db.update_product(&product).await?.then_some(product))
}

/// The order totals.
#[cached(ttl = "10m", key = "orders:stats")]
pub async fn order_stats(db: &Db) -> Result<OrderStats, DbError> {
    db.order_stats().await
}

/// A user's profile, with their order count; `None` for an unknown id.
#[cached(ttl = "30m", key = "user:{id}:profile")]
pub async fn user_profile(db: &Db, id: i64) -> Result<Option<Profile>, DbError> {
    db.user_profile(id).await
}

/// Forgets what orders just stored in the database change: the totals and
/// their users' profiles. A failure is logged; those entries then live out
/// their TTL.
pub async fn forget_order_totals(db: &Db, user_ids: impl IntoIterator<Item = i64>) {
    if let Err(e) = order_stats_invalidate(db).await {
        tracing::warn!(error = %e, "could not forget the order totals");
    }
    let mut ids: Vec<i64> = user_ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if let Err(e) = user_profile_invalidate(db, id).await {
            tracing::warn!(error = %e, user = id, "could not forget a profile");
        }
    }
}
