// #[cached(ttl = 60, skip(db))]
// pub async fn fetch<'a, T, U: Clone, const N: usize>(
//     db: &'a Db,
//     id: u64,
// ) -> Result<T, DbError>
// where
//     T: Serialize + DeserializeOwned,
// {
//     db.fetch::<T, U, N>(id).await
// }
// ----- expands to -----
pub async fn fetch<'a, T, U: Clone, const N: usize>(
    db: &'a Db,
    id: u64,
) -> Result<T, DbError>
where
    T: Serialize + DeserializeOwned,
{
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::fetch"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_args_generic(
            &[::core::any::type_name::<T>(), ::core::any::type_name::<U>()],
            &(__cache_rt::key_arg(&N), __cache_rt::key_arg(&id)),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Result<T, DbError> = { db.fetch::<T, U, N>(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::OkOnly, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::OkOnly, __cache_typed, __cache_body)
    }
        .await
}
/// `fetch` without the cache: runs the body every time, and reads or stores nothing.
#[allow(dead_code, unused_variables)]
pub async fn fetch_uncached<'a, T, U: Clone, const N: usize>(
    db: &'a Db,
    id: u64,
) -> Result<T, DbError>
where
    T: Serialize + DeserializeOwned,
{
    let __cache_body = async move {
        #[allow(clippy::diverging_sub_expression)]
        let __cache_ret: Result<T, DbError> = { db.fetch::<T, U, N>(id).await };
        #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
    };
    __cache_body.await
}
/// Removes the entry that `fetch` caches for these arguments: `Ok(true)` if there was one.
///
/// # Errors
///
/// `CacheError::Backend` when the cache fails or misses its deadline.
#[allow(dead_code, clippy::unused_self, clippy::needless_pass_by_value)]
pub async fn fetch_invalidate<'a, T, U: Clone, const N: usize>(
    _db: &'a Db,
    id: u64,
) -> ::core::result::Result<bool, ::cache_runtime::CacheError>
where
    T: Serialize + DeserializeOwned,
{
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::companion(
        ::core::concat!(::core::module_path!(), "::fetch"),
        __cache_rt::Ttl::Secs(60),
    );
    let __cache_invalidate = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .key_args_generic(
            &[::core::any::type_name::<T>(), ::core::any::type_name::<U>()],
            &(__cache_rt::key_arg(&N), __cache_rt::key_arg(&id)),
        )
        .invalidate();
    __cache_invalidate.await
}
