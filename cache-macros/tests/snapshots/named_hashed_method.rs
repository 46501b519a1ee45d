// #[cached(name = "repo::get", ttl = "long", skip(self))]
// async fn get(&self, id: u64, _: u8) -> Option<Item> {
//     self.items.get(&id).cloned()
// }
// ----- expands to (companions left out: see companions*.rs) -----
async fn get(&self, id: u64, _: u8) -> Option<Item> {
    use ::cache_runtime::__private::{self as __cache_rt, ViaBytes as _, ViaClone as _};
    static __CACHE_SITE: __cache_rt::Site = __cache_rt::Site::new(
        "repo::get",
        __cache_rt::Ttl::Long,
    );
    let __cache_call = __cache_rt::Call::new(&__CACHE_SITE, ::core::option::Option::None)
        .key_args_generic(
            &[::core::any::type_name::<Self>()],
            &(__cache_rt::key_arg(&id),),
        );
    {
        let __cache_body = async move {
            #[allow(clippy::diverging_sub_expression)]
            let __cache_ret: Option<Item> = { self.items.get(&id).cloned() };
            #[allow(unreachable_code, clippy::needless_return)] return __cache_ret;
        };
        let __cache_typed = (&&__cache_rt::probe(&__cache_rt::SomeOnly, &__cache_body))
            .typed();
        __cache_call.run(__cache_rt::SomeOnly, __cache_typed, __cache_body)
    }
        .await
}
