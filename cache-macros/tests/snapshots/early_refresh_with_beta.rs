// #[cached(ttl = "1m", early_refresh, beta = 2.0, key = "top:{n}")]
// async fn top(n: usize) -> Vec<u64> {
//     ranking::top(n).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn top(n: usize) -> Vec<u64> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::top"),
            __cache_rt::Ttl::Secs(60),
        )
        .early_refresh(2f64);
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "top:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& n)
            ),
        );
    {
        let __cache_make = move |__cache_want: __cache_rt::Want| match __cache_want {
            __cache_rt::Want::Body => {
                let __cache_body = async move {
                    #[allow(clippy::diverging_sub_expression)]
                    let __cache_ret: Vec<u64> = { ranking::top(n).await };
                    #[allow(unreachable_code, clippy::needless_return)]
                    return __cache_ret;
                };
                __cache_rt::Made::Body(__cache_body)
            }
            __cache_rt::Want::Refresh => {
                __cache_rt::Made::Refresh({
                    async move {
                        let __cache_body = async move {
                            #[allow(clippy::diverging_sub_expression)]
                            let __cache_ret: Vec<u64> = { ranking::top(n).await };
                            #[allow(unreachable_code, clippy::needless_return)]
                            return __cache_ret;
                        };
                        __cache_body.await
                    }
                })
            }
        };
        let __cache_typed = (&&__cache_rt::probe_make(
            &__cache_rt::Always,
            &__cache_make,
        ))
            .typed();
        __cache_call.run_refreshing(__cache_rt::Always, __cache_typed, __cache_make)
    }
        .await
}
