// #[cache_evict(key = "product:{id}", cache = self.cache)]
// async fn forget(&self, id: u64) {
//     self.log(id);
// }
// ----- expands to -----
async fn forget(&self, id: u64) {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::forget"),
        __cache_rt::Ttl::Default,
    );
    let __cache_evict = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::Some(&(self.cache)),
        )
        .evict()
        .key(
            ::core::format_args!(
                "product:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: () = {
                self.log(id);
            };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        __cache_evict.run(__cache_rt::Always, false, __cache_body)
    }
        .await
}
