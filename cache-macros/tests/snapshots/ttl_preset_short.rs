// #[cached(ttl = "short", key = "session:{token}")]
// async fn session(token: &str) -> Option<Session> {
//     sessions::load(token).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn session(token: &str) -> Option<Session> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::session"),
        __cache_rt::Ttl::Short,
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "session:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                token)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Option<Session> = { sessions::load(token).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::SomeOnly, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::SomeOnly, __cache_typed, __cache_body)
    }
        .await
}
