// #[cached(ttl = "5m", stale = "1h", key = "rates:{currency}")]
// async fn rates(db: &Db, currency: String) -> Result<Rates, DbError> {
//     db.rates(&currency).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn rates(db: &Db, currency: String) -> Result<Rates, DbError> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
            ::core::concat!(::core::module_path!(), "::rates"),
            __cache_rt::Ttl::Secs(300),
        )
        .stale(3600);
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "rates:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                currency)
            ),
        );
    {
        let __cache_make = move |__cache_want: __cache_rt::Want| match __cache_want {
            __cache_rt::Want::Body => {
                let __cache_body = async move {
                    #[allow(clippy::diverging_sub_expression)]
                    let __cache_ret: Result<Rates, DbError> = {
                        db.rates(&currency).await
                    };
                    #[allow(unreachable_code, clippy::needless_return)]
                    return __cache_ret;
                };
                __cache_rt::Made::Body(__cache_body)
            }
            __cache_rt::Want::Refresh => {
                __cache_rt::Made::Refresh({
                    let db = ::std::borrow::ToOwned::to_owned(db);
                    async move {
                        #[allow(unused_variables, unused_mut)]
                        let db: &Db = ::core::borrow::Borrow::borrow(&db);
                        let __cache_body = async move {
                            #[allow(clippy::diverging_sub_expression)]
                            let __cache_ret: Result<Rates, DbError> = {
                                db.rates(&currency).await
                            };
                            #[allow(unreachable_code, clippy::needless_return)]
                            return __cache_ret;
                        };
                        __cache_body.await
                    }
                })
            }
        };
        let __cache_typed = (&&__cache_rt::probe_make(
            &__cache_rt::OkOnly,
            &__cache_make,
        ))
            .typed();
        __cache_call.run_refreshing(__cache_rt::OkOnly, __cache_typed, __cache_make)
    }
        .await
}
