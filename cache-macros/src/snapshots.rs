//! Expansion snapshots: [`expand::cached`], [`expand::cache_put`] and
//! [`expand::cache_evict`] called on `quote!` input, the output formatted
//! with `prettyplease` and compared with `tests/snapshots/<name>.rs`. Stable
//! Rust, no `cargo expand`.
//!
//! The `#[cached]` cases show the function alone; the `_uncached` and
//! `_invalidate` companions generated next to it are shown by the
//! `companions*` cases (and by every case with `no_companions`, which has
//! none). The `error_*` cases show everything: the function as written, the
//! stand-ins for its companions and the errors.
//!
//! After a deliberate change to the expansion, regenerate with
//! `UPDATE_SNAPSHOTS=1 cargo test -p cache-macros` and read every diff.

use crate::expand;
use proc_macro2::TokenStream;
use quote::quote;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Which macro, and how much of its output a snapshot shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    /// `#[cached]`: the function only, without its companions.
    Cached,
    /// `#[cached]` with the companions.
    CachedAll,
    Put,
    Evict,
}

/// The expansion of `#[macro(attr)] item`, formatted, with the input as a
/// header comment so that a snapshot reads on its own.
fn render(show: Show, attr: &TokenStream, item: &TokenStream) -> String {
    let (output, name) = match show {
        Show::Cached | Show::CachedAll => {
            (expand::cached(attr.clone(), item.clone()), quote!(cached))
        }
        Show::Put => (
            expand::cache_put(attr.clone(), item.clone()),
            quote!(cache_put),
        ),
        Show::Evict => (
            expand::cache_evict(attr.clone(), item.clone()),
            quote!(cache_evict),
        ),
    };
    let mut file: syn::File = syn::parse2(output.clone())
        .unwrap_or_else(|e| panic!("the expansion is not a valid file: {e}\n{output}"));
    let mut header = "// ----- expands to -----\n";
    if show == Show::Cached && file.items.len() == 3 {
        file.items.truncate(1);
        header = "// ----- expands to (companions left out: see companions*.rs) -----\n";
    }
    let attribute = if attr.is_empty() {
        quote!(#[#name])
    } else {
        quote!(#[#name(#attr)])
    };
    let input: syn::File =
        syn::parse2(quote!(#attribute #item)).expect("the input is a valid file");
    let mut text = String::new();
    for line in prettyplease::unparse(&input).lines() {
        writeln!(text, "// {line}").unwrap();
    }
    text.push_str(header);
    text.push_str(&prettyplease::unparse(&file));
    text
}

fn check(name: &str, attr: TokenStream, item: TokenStream) {
    check_as(Show::Cached, name, attr, item);
}

fn check_as(show: Show, name: &str, attr: TokenStream, item: TokenStream) {
    let actual = render(show, &attr, &item);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(format!("{name}.rs"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "no snapshot at {} ({e}); create it with `UPDATE_SNAPSHOTS=1 cargo test -p cache-macros`, \
             then read it. The expansion is:\n{actual}",
            path.display()
        ),
    };
    if expected != actual {
        panic!(
            "the expansion `{name}` differs from {}:\n{}\nIf the change is intended, update the \
             snapshots with `UPDATE_SNAPSHOTS=1 cargo test -p cache-macros` and read the diff.",
            path.display(),
            diff(&expected, &actual)
        );
    }
}

/// A line diff: the first differing lines with a little context, `-` for the
/// snapshot and `+` for the new expansion.
fn diff(expected: &str, actual: &str) -> String {
    const CONTEXT: usize = 3;
    const SHOWN: usize = 20;
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let mut out = String::new();
    let start = prefix.saturating_sub(CONTEXT);
    writeln!(
        out,
        "@@ first difference at line {} (- snapshot, + expansion) @@",
        prefix + 1
    )
    .unwrap();
    for line in &old[start..prefix] {
        writeln!(out, "  {line}").unwrap();
    }
    let removed = &old[prefix..old.len() - suffix];
    let added = &new[prefix..new.len() - suffix];
    for line in removed.iter().take(SHOWN) {
        writeln!(out, "- {line}").unwrap();
    }
    if removed.len() > SHOWN {
        writeln!(out, "- ... {} more lines", removed.len() - SHOWN).unwrap();
    }
    for line in added.iter().take(SHOWN) {
        writeln!(out, "+ {line}").unwrap();
    }
    if added.len() > SHOWN {
        writeln!(out, "+ ... {} more lines", added.len() - SHOWN).unwrap();
    }
    for line in old[old.len() - suffix..].iter().take(CONTEXT) {
        writeln!(out, "  {line}").unwrap();
    }
    out
}

#[test]
fn diff_shows_the_first_difference() {
    let d = diff("a\nb\nc\nd\ne\n", "a\nb\nX\nd\ne\n");
    assert_eq!(
        d,
        "@@ first difference at line 3 (- snapshot, + expansion) @@\n  a\n  b\n- c\n+ X\n  d\n  e\n"
    );
    let d = diff("a\n", "a\nb\n");
    assert_eq!(
        d,
        "@@ first difference at line 2 (- snapshot, + expansion) @@\n  a\n+ b\n"
    );
}

#[test]
fn plain() {
    check(
        "plain",
        quote!(),
        quote! {
            async fn get(id: u64) -> u64 {
                id * 2
            }
        },
    );
}

#[test]
fn free_fn_template_key() {
    check(
        "free_fn_template_key",
        quote!(ttl = 60, key = "product:{id}"),
        quote! {
            /// Loads a product.
            pub async fn get_product(id: u64) -> Product {
                load(id).await
            }
        },
    );
}

#[test]
fn method_with_cache_field() {
    check(
        "method_with_cache_field",
        quote!(
            ttl = "10m",
            key = "t:{self.tenant}:user:{id}",
            cache = self.cache
        ),
        quote! {
            pub async fn user(&self, id: u64) -> User {
                self.db.user(id).await
            }
        },
    );
}

#[test]
fn result_return() {
    check(
        "result_return",
        quote!(ttl = 600, key = "product:{id}"),
        quote! {
            async fn get_product(id: u64) -> Result<Product, DbError> {
                db::product(id).await
            }
        },
    );
}

#[test]
fn option_cache_none() {
    check(
        "option_cache_none",
        quote!(ttl = 30, key = "user:{id}", cache_none),
        quote! {
            async fn find_user(id: u64) -> Option<User> {
                db::find_user(id).await
            }
        },
    );
}

#[test]
fn option_none_ttl() {
    check(
        "option_none_ttl",
        quote!(ttl = "1h", none_ttl = "30s", key = "user:{id}"),
        quote! {
            async fn find_user(id: u64) -> Option<User> {
                db::find_user(id).await
            }
        },
    );
}

#[test]
fn option_without_cache_none() {
    check(
        "option_without_cache_none",
        quote!(ttl = 30, key = "user:{id}"),
        quote! {
            async fn find_user(id: u64) -> Option<User> {
                db::find_user(id).await
            }
        },
    );
}

#[test]
fn nested_field_template() {
    check(
        "nested_field_template",
        quote!(key = "order:{req.user.id}:{req.page.0}:{{literal}}"),
        quote! {
            async fn orders(req: &Request) -> Vec<Order> {
                db::orders(req).await
            }
        },
    );
}

#[test]
fn hashed_with_skip() {
    check(
        "hashed_with_skip",
        quote!(ttl = "1h30m", skip(db)),
        quote! {
            async fn search(db: &Pool, query: &str, page: u32) -> Vec<Hit> {
                db.search(query, page).await
            }
        },
    );
}

#[test]
fn named_hashed_method() {
    check(
        "named_hashed_method",
        quote!(name = "repo::get", ttl = "long", skip(self)),
        quote! {
            async fn get(&self, id: u64, _: u8) -> Option<Item> {
                self.items.get(&id).cloned()
            }
        },
    );
}

#[test]
fn crate_rename() {
    check(
        "crate_rename",
        quote!(crate = my_cache, ttl = 60, key = "double:{x}"),
        quote! {
            pub async fn double(x: u64) -> u64 {
                x * 2
            }
        },
    );
}

#[test]
fn no_return_type() {
    check(
        "no_return_type",
        quote!(ttl = 5),
        quote! {
            async fn warm(id: u64) {
                touch(id).await;
            }
        },
    );
}

#[test]
fn ttl_preset_short() {
    check(
        "ttl_preset_short",
        quote!(ttl = "short", key = "session:{token}"),
        quote! {
            async fn session(token: &str) -> Option<Session> {
                sessions::load(token).await
            }
        },
    );
}

#[test]
fn generic_and_lifetimes() {
    check(
        "generic_and_lifetimes",
        quote!(skip(conn)),
        quote! {
            async fn fetch<'a, T>(conn: &'a Conn, ids: &'a [u64]) -> Vec<T>
            where
                T: Serialize + DeserializeOwned + Send,
            {
                conn.fetch(ids).await
            }
        },
    );
}

#[test]
fn generic_hashed_key() {
    // `fetch::<User>(1)` and `fetch::<Order>(1)` get different keys: the
    // type arguments' names are hashed with the arguments, the const
    // arguments before them; `_invalidate` computes the same key.
    check_as(
        Show::CachedAll,
        "generic_hashed_key",
        quote!(ttl = 60, skip(db)),
        quote! {
            pub async fn fetch<'a, T, U: Clone, const N: usize>(db: &'a Db, id: u64) -> Result<T, DbError>
            where
                T: Serialize + DeserializeOwned,
            {
                db.fetch::<T, U, N>(id).await
            }
        },
    );
}

#[test]
fn multi_statement_body() {
    check(
        "multi_statement_body",
        quote!(ttl = 60, key = "product:{id}"),
        quote! {
            async fn get_product(db: &Db, id: u64) -> Result<Product, DbError> {
                let row = db.query_one(id).await?;
                if row.deleted {
                    return Err(DbError::NotFound);
                }
                Ok(row.into())
            }
        },
    );
}

#[test]
fn inner_attribute_and_docs() {
    check(
        "inner_attribute_and_docs",
        quote!(key = "n:{n}"),
        quote! {
            /// Documented.
            #[inline]
            pub(crate) async fn count(n: u32) -> u32 {
                #![allow(clippy::identity_op)]
                n + 0
            }
        },
    );
}

#[test]
fn diverging_body() {
    check(
        "diverging_body",
        quote!(),
        quote! {
            async fn later(id: u64) -> u64 {
                todo!()
            }
        },
    );
}

#[test]
fn error_not_async() {
    check(
        "error_not_async",
        quote!(ttl = 60),
        quote! {
            /// Kept, with its docs.
            fn get(id: u64) -> u64 {
                id
            }
        },
    );
}

#[test]
fn error_several() {
    check(
        "error_several",
        quote!(tll = 60, key = "p:{idd}", skip(id, id)),
        quote! {
            async fn get(id: u64) -> u64 {
                id
            }
        },
    );
}

#[test]
fn error_not_a_function() {
    check(
        "error_not_a_function",
        quote!(ttl = 60),
        quote! {
            struct Product {
                id: u64,
            }
        },
    );
}

#[test]
fn companions() {
    check_as(
        Show::CachedAll,
        "companions",
        quote!(ttl = 60, skip(db)),
        quote! {
            /// Loads a product.
            ///
            /// # Errors
            ///
            /// When the query fails.
            pub async fn product(db: &Db, mut id: u64, _: bool) -> Result<Product, DbError> {
                id += 0;
                db.product(id).await
            }
        },
    );
}

#[test]
fn companions_of_method_with_template() {
    check_as(
        Show::CachedAll,
        "companions_of_method_with_template",
        quote!(key = "t:{self.tenant}:{a}", cache = self.cache),
        quote! {
            pub(crate) async fn pair<T: Clone>(&self, (a, b): (u64, u64), Point { x, .. }: Point, t: T) -> u64 {
                a + b + x
            }
        },
    );
}

#[test]
fn no_companions_in_trait_impl() {
    check_as(
        Show::CachedAll,
        "no_companions_in_trait_impl",
        quote!(cache = self.cache, key = "price:{id}", no_companions),
        quote! {
            async fn price(&self, id: u64) -> u64 {
                id * 100
            }
        },
    );
}

#[test]
fn l1_off() {
    check(
        "l1_off",
        quote!(ttl = 60, key = "rate:{user}", l1 = false),
        quote! {
            async fn rate_limit(user: u64) -> u32 {
                limits::load(user).await
            }
        },
    );
}

#[test]
fn lock_off() {
    check(
        "lock_off",
        quote!(ttl = 5, key = "feed:{user}", lock = false),
        quote! {
            async fn feed(user: u64) -> Vec<u64> {
                feeds::latest(user).await
            }
        },
    );
}

#[test]
fn stale_function() {
    check(
        "stale_function",
        quote!(ttl = "5m", stale = "1h", key = "rates:{currency}"),
        quote! {
            async fn rates(db: &Db, currency: String) -> Result<Rates, DbError> {
                db.rates(&currency).await
            }
        },
    );
}

#[test]
fn stale_method() {
    check(
        "stale_method",
        quote!(ttl = 60, stale = 600, key = "user:{id}"),
        quote! {
            async fn user(&self, id: u64) -> Option<User> {
                self.db.user(id).await
            }
        },
    );
}

#[test]
fn early_refresh_with_beta() {
    check(
        "early_refresh_with_beta",
        quote!(ttl = "1m", early_refresh, beta = 2.0, key = "top:{n}"),
        quote! {
            async fn top(n: usize) -> Vec<u64> {
                ranking::top(n).await
            }
        },
    );
}

#[test]
fn l1_ttl_with_companions() {
    check_as(
        Show::CachedAll,
        "l1_ttl_with_companions",
        quote!(ttl = "10m", l1_ttl = "5s", key = "price:{id}"),
        quote! {
            async fn price(id: u64) -> u64 {
                prices::load(id).await
            }
        },
    );
}

#[test]
fn cached_with_tags() {
    check(
        "cached_with_tags",
        quote!(
            ttl = 600,
            key = "product:{id}",
            tags = ["products", "category:{cat}"]
        ),
        quote! {
            async fn product(id: u64, cat: &str) -> Option<Product> {
                db::product(id, cat).await
            }
        },
    );
}

#[test]
fn template_placeholders() {
    // Each placeholder's value is wrapped in `key_part`, which escapes `%`
    // and `:`: `("1:2", "3")` and `("1", "2:3")` render apart.
    check_as(
        Show::CachedAll,
        "template_placeholders",
        quote!(ttl = 60, key = "pair:{a}:{b}", tags = ["left:{a}"]),
        quote! {
            async fn pair(a: &str, b: &str) -> String {
                format!("{a}{b}")
            }
        },
    );
}

#[test]
fn template_other_separators() {
    // A template with other ASCII punctuation than `:` escapes that in its
    // values too (`-` here, as `%2D`), with a mask computed at compile
    // time: `("1", "2-3")` and `("1-2", "3")` render apart. The tag has
    // its own literal text, so its own set.
    check_as(
        Show::CachedAll,
        "template_other_separators",
        quote!(
            ttl = 60,
            key = "pair:{a}-{b}",
            tags = ["left_{a}", "plain:{b}"]
        ),
        quote! {
            async fn pair(a: &str, b: &str) -> String {
                format!("{a}{b}")
            }
        },
    );
}

#[test]
fn cache_evict_other_separators() {
    // The pattern escapes its values as the key template it targets does:
    // its glob syntax (`*`) is no key text, its `-` is.
    check_as(
        Show::Evict,
        "cache_evict_other_separators",
        quote!(key = "pair:{a}-{b}", pattern = "pair:{a}-*"),
        quote! {
            async fn forget_pairs(a: &str, b: &str) {}
        },
    );
}

#[test]
fn cache_put() {
    check_as(
        Show::Put,
        "cache_put",
        quote!(
            key = "product:{product.id}",
            ttl = 3600,
            tags = ["category:{product.category}"]
        ),
        quote! {
            /// Saves a product and refreshes its cached copy.
            pub async fn save_product(db: &Db, product: Product) -> Result<Product, DbError> {
                db.save(&product).await?;
                Ok(product)
            }
        },
    );
}

#[test]
fn cache_evict() {
    check_as(
        Show::Evict,
        "cache_evict",
        quote!(
            keys = ["product:{id}", "product:slug:{slug}"],
            tags = ["products"],
            pattern = "products:list:{category}:*",
            before
        ),
        quote! {
            pub async fn delete_product(db: &Db, id: u64, slug: &str, category: &str) -> Result<(), DbError> {
                db.delete(id).await
            }
        },
    );
}

#[test]
fn cache_evict_after_unit_body() {
    check_as(
        Show::Evict,
        "cache_evict_after_unit_body",
        quote!(key = "product:{id}", cache = self.cache),
        quote! {
            async fn forget(&self, id: u64) {
                self.log(id);
            }
        },
    );
}
