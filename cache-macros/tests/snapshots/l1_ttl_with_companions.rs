// #[cached(ttl = "10m", l1_ttl = "5s", key = "price:{id}")]
// async fn price(id: u64) -> u64 {
//     prices::load(id).await
// }
// ----- expands to -----
async fn price(id: u64) -> u64 {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::price"),
            __cache_rt::Ttl::Secs(600),
        )
        .l1(__cache_rt::L1::MaxSecs(5));
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "price:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: u64 = { prices::load(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
/// `price` without the cache: runs the body every time, and reads or stores nothing.
#[allow(dead_code, unused_variables)]
async fn price_uncached(id: u64) -> u64 {
    let __cache_body = async move {
        #[allow(clippy::diverging_sub_expression)]
        let __cache_ret: u64 = { prices::load(id).await };
        #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
    };
    __cache_body.await
}
/// Removes the entry that `price` caches for these arguments: `Ok(true)` if there was one.
///
/// # Errors
///
/// `CacheError::Backend` when the cache fails or misses its deadline.
#[allow(dead_code, clippy::unused_self, clippy::needless_pass_by_value)]
async fn price_invalidate(
    id: u64,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(
        ::core::concat!(::core::module_path!(), "::price"),
        __cache_rt::Ttl::Secs(600),
    );
    let __cache_invalidate = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .key_fmt(
            ::core::format_args!(
                "price:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        )
        .invalidate();
    __cache_invalidate.await
}
