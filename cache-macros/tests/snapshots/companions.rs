// #[cached(ttl = 60, skip(db))]
// /// Loads a product.
// ///
// /// # Errors
// ///
// /// When the query fails.
// pub async fn product(db: &Db, mut id: u64, _: bool) -> Result<Product, DbError> {
//     id += 0;
//     db.product(id).await
// }
// ----- expands to -----
/// Loads a product.
///
/// # Errors
///
/// When the query fails.
pub async fn product(db: &Db, mut id: u64, _: bool) -> Result<Product, DbError> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::product"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_args(&(__cache_rt::key_arg(&id),));
    {
        let __cache_body = async move {
            let __cache_ret: Result<Product, DbError> = {
                id += 0;
                db.product(id).await
            };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::OkOnly, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::OkOnly, __cache_typed, __cache_body)
    }
        .await
}
/// `product` without the cache: runs the body every time, and reads or stores nothing.
///
/// Loads a product.
///
/// # Errors
///
/// When the query fails.
#[allow(dead_code, unused_variables)]
pub async fn product_uncached(
    db: &Db,
    mut id: u64,
    _: bool,
) -> Result<Product, DbError> {
    let __cache_body = async move {
        let __cache_ret: Result<Product, DbError> = {
            id += 0;
            db.product(id).await
        };
        #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
    };
    __cache_body.await
}
/// Removes the entry that `product` caches for these arguments: `Ok(true)` if there was one.
///
/// # Errors
///
/// `CacheError::Backend` when the cache fails or misses its deadline.
#[allow(dead_code, clippy::unused_self, clippy::needless_pass_by_value)]
pub async fn product_invalidate(
    _db: &Db,
    id: u64,
    _: bool,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(
        ::core::concat!(::core::module_path!(), "::product"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_invalidate = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .key_args(&(__cache_rt::key_arg(&id),))
        .invalidate();
    __cache_invalidate.await
}
