// #[cached(key = "t:{self.tenant}:{a}", cache = self.cache)]
// pub(crate) async fn pair<T: Clone>(
//     &self,
//     (a, b): (u64, u64),
//     Point { x, .. }: Point,
//     t: T,
// ) -> u64 {
//     a + b + x
// }
// ----- expands to -----
pub(crate) async fn pair<T: Clone>(
    &self,
    (a, b): (u64, u64),
    Point { x, .. }: Point,
    t: T,
) -> u64 {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::pair"),
        __cache_rt::Ttl::Default,
    );
    let __cache_call = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::Some(&(self.cache)),
        )
        .key_fmt(
            ::core::format_args!(
                "t:{}:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& self
                .tenant), __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: u64 = { a + b + x };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
/// `pair` without the cache: runs the body every time, and reads or stores nothing.
#[allow(dead_code, unused_variables)]
pub(crate) async fn pair_uncached<T: Clone>(
    &self,
    (a, b): (u64, u64),
    Point { x, .. }: Point,
    t: T,
) -> u64 {
    let __cache_body = async move {
        #[allow(clippy::diverging_sub_expression)]
        let __cache_ret: u64 = { a + b + x };
        #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
    };
    __cache_body.await
}
/// Removes the entry that `pair` caches for these arguments: `Ok(true)` if there was one.
///
/// # Errors
///
/// `CacheError::Backend` when the cache fails or misses its deadline.
#[allow(
    dead_code,
    clippy::unused_self,
    clippy::needless_pass_by_value,
    clippy::extra_unused_type_parameters
)]
pub(crate) async fn pair_invalidate<T: Clone>(
    &self,
    (a, _b): (u64, u64),
    Point { x: _x, .. }: Point,
    _t: T,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(
        ::core::concat!(::core::module_path!(), "::pair"),
        __cache_rt::Ttl::Default,
    );
    let __cache_invalidate = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::Some(&(self.cache)),
        )
        .key_fmt(
            ::core::format_args!(
                "t:{}:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& self
                .tenant), __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
            ),
        )
        .invalidate();
    __cache_invalidate.await
}
