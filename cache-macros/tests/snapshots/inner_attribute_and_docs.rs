// #[cached(key = "n:{n}")]
// /// Documented.
// #[inline]
// pub(crate) async fn count(n: u32) -> u32 {
//     #![allow(clippy::identity_op)]
//     n + 0
// }
// ----- expands to (companions left out: see companions*.rs) -----
/// Documented.
#[inline]
pub(crate) async fn count(n: u32) -> u32 {
    #![allow(clippy::identity_op)]
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::count"),
        __cache_rt::Ttl::Default,
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "n:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& n)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: u32 = { n + 0 };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
