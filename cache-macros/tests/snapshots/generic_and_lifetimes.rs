// #[cached(skip(conn))]
// async fn fetch<'a, T>(conn: &'a Conn, ids: &'a [u64]) -> Vec<T>
// where
//     T: Serialize + DeserializeOwned + Send,
// {
//     conn.fetch(ids).await
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn fetch<'a, T>(conn: &'a Conn, ids: &'a [u64]) -> Vec<T>
where
    T: Serialize + DeserializeOwned + Send,
{
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::fetch"),
        __cache_rt::Ttl::Default,
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_args_generic(
            &[::core::any::type_name::<T>()],
            &(__cache_rt::key_arg(&ids),),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Vec<T> = { conn.fetch(ids).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::Always, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::Always, __cache_typed, __cache_body)
    }
        .await
}
