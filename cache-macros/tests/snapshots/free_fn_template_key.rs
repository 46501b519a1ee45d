// #[cached(ttl = 60, key = "product:{id}")]
// /// Loads a product.
// pub async fn get_product(id: u64) -> Product {
//     load(id).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
/// Loads a product.
pub async fn get_product(id: u64) -> Product {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::get_product"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "product:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Product = { load(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
