// #[cached(ttl = "1h", none_ttl = "30s", key = "user:{id}")]
// async fn find_user(id: u64) -> Option<User> {
//     db::find_user(id).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn find_user(id: u64) -> Option<User> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::find_user"),
            __cache_rt::Ttl::Secs(3600),
        )
        .none_ttl(30);
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "user:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Option<User> = { db::find_user(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::SomeOrNone, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::SomeOrNone, __cache_typed, __cache_body)
    }
        .await
}
