// #[cached(crate = my_cache, ttl = 60, key = "double:{x}")]
// pub async fn double(x: u64) -> u64 {
//     x * 2
// }
// ----- expands to (companions left out: see companions*.rs) -----
pub async fn double(x: u64) -> u64 {
    use my_cache::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::double"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "double:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& x)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: u64 = { x * 2 };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
