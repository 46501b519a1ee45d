// #[cache_evict(key = "pair:{a}-{b}", pattern = "pair:{a}-*")]
// async fn forget_pairs(a: &str, b: &str) {}
// ----- expands to -----
async fn forget_pairs(a: &str, b: &str) {
    use ::cache_runtime::__private as __cache_rt;
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        ::core::concat!(::core::module_path!(), "::forget_pairs"),
        __cache_rt::Ttl::Default,
    );
    let __cache_evict = __cache_rt::Call::new(
            &__CACHE_SITE,
            ::core::option::Option::None,
        )
        .evict()
        .key(
            ::core::format_args!(
                "pair:{}-{}", __cache_rt::key_part:: < dyn ::core::fmt::Display > (& a)
                .escaping(const { __cache_rt::KeyPart::mask("-:") }),
                __cache_rt::key_part:: < dyn ::core::fmt::Display > (& b).escaping(const
                { __cache_rt::KeyPart::mask("-:") })
            ),
        )
        .pattern(
            ::core::format_args!(
                "pair:{}-*", __cache_rt::glob_literal(& __cache_rt::key_part:: < dyn
                ::core::fmt::Display > (& a).escaping(const {
                __cache_rt::KeyPart::mask("-:") }))
            ),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: () = {};
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        __cache_evict.run(__cache_rt::Always, false, __cache_body)
    }
        .await
}
