// #[cached(ttl = 60, stale = 600, key = "user:{id}")]
// async fn user(&self, id: u64) -> Option<User> {
//     self.db.user(id).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn user(&self, id: u64) -> Option<User> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::user"),
            __cache_rt::Ttl::Secs(60),
        )
        .stale(600);
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "user:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        );
    {
        let __cache_make = move |__cache_want: __cache_rt::Want| match __cache_want {
            __cache_rt::Want::Body => {
                let __cache_body = async move {
                    #[allow(clippy::diverging_sub_expression)]
                    let __cache_ret: Option<User> = { self.db.user(id).await };
                    #[allow(unreachable_code, clippy::needless_return)]
                    return __cache_ret;
                };
                __cache_rt::Made::Body(__cache_body)
            }
            __cache_rt::Want::Refresh => {
                __cache_rt::Made::Refresh({
                    let __cache_this = ::core::clone::Clone::clone(self);
                    async move { Self::user_uncached(&__cache_this, id).await }
                })
            }
        };
        let __cache_typed = (&&__cache_rt::probe_make(
            &__cache_rt::SomeOnly,
            &__cache_make,
        ))
            .typed();
        __cache_call.run_refreshing(__cache_rt::SomeOnly, __cache_typed, __cache_make)
    }
        .await
}
