// #[cached(key = "order:{req.user.id}:{req.page.0}:{{literal}}")]
// async fn orders(req: &Request) -> Vec<Order> {
//     db::orders(req).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn orders(req: &Request) -> Vec<Order> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::orders"),
        __cache_rt::Ttl::Default,
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "order:{}:{}:{{literal}}", __cache_rt::key_part:: < dyn
                ::core::fmt::Display > (& req.user.id).escaping(const {
                __cache_rt::KeyPart::mask(":{}") }), __cache_rt::key_part:: < dyn
                ::core::fmt::Display > (& req.page.0).escaping(const {
                __cache_rt::KeyPart::mask(":{}") })
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Vec<Order> = { db::orders(req).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
