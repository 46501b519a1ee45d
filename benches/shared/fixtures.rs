//! Values and arguments shared by the criterion benches and the throughput
//! tool. Included with `#[path]` into each target (the package has no
//! library), so not every target uses every item.

#![allow(dead_code)]

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A typical cached row: about 200 bytes of JSON (see [`product`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    pub id: u64,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price_cents: u64,
    pub currency: String,
    pub stock: u32,
    pub tags: Vec<String>,
    pub active: bool,
    pub rating: f32,
}

/// The product with this id: deterministic, 205 to 210 bytes of JSON for the
/// ids the benches use.
pub fn product(id: u64) -> Product {
    Product {
        id,
        sku: format!("SKU-{id:06}"),
        name: format!("Desk lamp, steel #{id:03}"),
        description: "Adjustable arm, warm white LED".to_owned(),
        price_cents: 4_999 + id,
        currency: "EUR".to_owned(),
        stock: 120,
        tags: vec!["lighting".to_owned(), "office".to_owned()],
        active: true,
        rating: 4.5,
    }
}

/// A large cached value: about 20 KB of JSON (a page of 96 products).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub id: u64,
    pub title: String,
    pub page: u32,
    pub products: Vec<Product>,
}

/// The catalog page used by the `codec` bench.
pub fn catalog() -> Catalog {
    Catalog {
        id: 7,
        title: "Lighting / desk lamps".to_owned(),
        page: 1,
        products: (0..96).map(product).collect(),
    }
}

/// A key argument of ten fields of mixed types, as a search request might be.
#[derive(Debug, Clone, Serialize)]
pub struct SearchRequest {
    pub tenant: u32,
    pub user_id: u64,
    pub query: String,
    pub category: String,
    pub page: u32,
    pub per_page: u16,
    pub in_stock_only: bool,
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    pub sort: String,
}

/// The ten-field key argument used by the `keys` bench.
pub fn search_request() -> SearchRequest {
    SearchRequest {
        tenant: 3,
        user_id: 1_234_567,
        query: "desk lamp".to_owned(),
        category: "lighting".to_owned(),
        page: 2,
        per_page: 48,
        in_stock_only: true,
        min_price: Some(1_000),
        max_price: None,
        sort: "price_asc".to_owned(),
    }
}

/// A map key argument of 20 entries.
pub fn quantities() -> HashMap<String, u32> {
    (0..20).map(|i| (format!("sku-{i:04}"), i * 3)).collect()
}

/// A 1 KiB byte-vector key argument (serde sees it as a sequence of `u8`).
pub fn blob() -> Vec<u8> {
    (0..1024u32).map(|i| (i * 31 % 251) as u8).collect()
}
