// #[cache_put(
//     key = "product:{product.id}",
//     ttl = 3600,
//     tags = ["category:{product.category}"]
// )]
// /// Saves a product and refreshes its cached copy.
// pub async fn save_product(db: &Db, product: Product) -> Result<Product, DbError> {
//     db.save(&product).await?;
//     Ok(product)
// }
// ----- expands to -----
/// Saves a product and refreshes its cached copy.
pub async fn save_product(db: &Db, product: Product) -> Result<Product, DbError> {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::save_product"),
        __cache_rt::Ttl::Secs(3600),
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_fmt(
            ::core::format_args!(
                "product:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                product.id)
            ),
        )
        .tag(
            ::core::format_args!(
                "category:{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (&
                product.category)
            ),
        );
    {
        let __cache_body = async move {
            let __cache_ret: Result<Product, DbError> = {
                db.save(&product).await?;
                Ok(product)
            };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        __cache_call.put(__cache_rt::OkOnly, __cache_body)
    }
        .await
}
