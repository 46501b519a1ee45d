// #[cached(cache = self.cache, key = "price:{id}", no_companions)]
// async fn price(&self, id: u64) -> u64 {
//     id * 100
// }
// ----- expands to -----
async fn price(&self, id: u64) -> u64 {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::price"),
        __cache_rt::Ttl::Default,
    );
    let __cache_call = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::Some(&(self.cache)),
        )
        .key_fmt(
            ::core::format_args!(
                "price:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: u64 = { id * 100 };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
