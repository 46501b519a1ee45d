// #[cached(ttl = 60, key = "pair:{a}-{b}", tags = ["left_{a}", "plain:{b}"])]
// async fn pair(a: &str, b: &str) -> String {
//     format!("{a}{b}")
// }
// ----- expands to -----
async fn pair(a: &str, b: &str) -> String {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::pair"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "pair:{}-{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
                .escaping(const { __cache_rt::KeyPart::mask("-:") }),
                __cache_rt::key_part:: < dyn ::core::fmt::Display > (& b).escaping(const
                { __cache_rt::KeyPart::mask("-:") })
            ),
        )
        .tag(
            ::core::format_args!(
                "left_{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
                .escaping(const { __cache_rt::KeyPart::mask(":_") })
            ),
        )
        .tag(
            ::core::format_args!(
                "plain:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& b)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: String = { format!("{a}{b}") };
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
async fn pair_uncached(a: &str, b: &str) -> String {
    let __cache_body = async move {
        #[allow(clippy::diverging_sub_expression)]
        let __cache_ret: String = { format!("{a}{b}") };
        #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
    };
    __cache_body.await
}
/// Removes the entry that `pair` caches for these arguments: `Ok(true)` if there was one.
///
/// # Errors
///
/// `CacheError::Backend` when the cache fails or misses its deadline.
#[allow(dead_code, clippy::unused_self, clippy::needless_pass_by_value)]
async fn pair_invalidate(
    a: &str,
    b: &str,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(
        ::core::concat!(::core::module_path!(), "::pair"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_invalidate = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .key_fmt(
            ::core::format_args!(
                "pair:{}-{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
                .escaping(const { __cache_rt::KeyPart::mask("-:") }),
                __cache_rt::key_part:: < dyn ::core::fmt::Display > (& b).escaping(const
                { __cache_rt::KeyPart::mask("-:") })
            ),
        )
        .invalidate();
    __cache_invalidate.await
}
