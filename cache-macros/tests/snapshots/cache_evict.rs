// #[cache_evict(
//     keys = ["product:{id}",
//     "product:slug:{slug}"],
//     tags = ["products"],
//     pattern = "products:list:{category}:*",
//     before
// )]
// pub async fn delete_product(
//     db: &Db,
//     id: u64,
//     slug: &str,
//     category: &str,
// ) -> Result<(), DbError> {
//     db.delete(id).await
// }
// ----- expands to -----
pub async fn delete_product(
    db: &Db,
    id: u64,
    slug: &str,
    category: &str,
) -> Result<(), DbError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::delete_product"),
        __cache_rt::Ttl::Default,
    );
    let __cache_evict = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .evict()
        .key(
            ::core::format_args!(
                "product:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& id)
            ),
        )
        .key(
            ::core::format_args!(
                "product:slug:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                slug)
            ),
        )
        .tag(::core::format_args!("products"))
        .pattern(
            ::core::format_args!(
                "products:list:{}:*", __cache_rt::glob_literal(& __cache_rt::key_part:: <
                dyn ::core::fmt::Display > (& category))
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Result<(), DbError> = { db.delete(id).await };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        __cache_evict.run(__cache_rt::OkOnly, true, __cache_body)
    }
        .await
}
