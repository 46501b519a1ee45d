// #[cached(ttl = 5, key = "feed:{user}", lock = false)]
// async fn feed(user: u64) -> Vec<u64> {
//     feeds::latest(user).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn feed(user: u64) -> Vec<u64> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::feed"),
            __cache_rt::Ttl::Secs(5),
        )
        .without_lock();
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "feed:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& user)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Vec<u64> = { feeds::latest(user).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
