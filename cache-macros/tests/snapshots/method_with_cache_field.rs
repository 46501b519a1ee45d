// #[cached(ttl = "10m", key = "t:{self.tenant}:user:{id}", cache = self.cache)]
// pub async fn user(&self, id: u64) -> User {
//     self.db.user(id).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
pub async fn user(&self, id: u64) -> User {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::user"),
        __cache_rt::Ttl::Secs(600),
    );
    let __cache_call = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::Some(&(self.cache)),
        )
        .key_fmt(
            ::core::format_args!(
                "t:{}:user:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                self.tenant), __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: User = { self.db.user(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
