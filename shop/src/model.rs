//! What the shop serves, as JSON.

use serde::{Deserialize, Serialize};

/// A product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Its id, 1 to 10,000 in the sample data.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// Its price, in cents.
    pub price_cents: i64,
    /// How many are in stock.
    pub stock: i64,
}

/// An order as a client places it (`POST /orders`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// Who orders.
    pub user_id: i64,
    /// What.
    pub product_id: i64,
    /// How many, 1 to 1,000.
    pub quantity: i64,
}

/// An order placed, on its way to the database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Its id (random: shops sharing a database never draw the same one).
    pub id: i64,
    /// Who ordered.
    pub user_id: i64,
    /// What.
    pub product_id: i64,
    /// How many.
    pub quantity: i64,
    /// What it costs, at the price when it was placed.
    pub total_cents: i64,
}

/// The order totals (`GET /orders/stats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStats {
    /// Orders in the database.
    pub total: i64,
    /// Of which pending.
    pub pending: i64,
    /// Of which completed.
    pub completed: i64,
    /// What the completed orders brought in, in cents.
    pub revenue_cents: i64,
}

/// A user's profile (`GET /users/{id}/profile`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// The user's id.
    pub id: i64,
    /// Their login name.
    pub username: String,
    /// Their display name.
    pub name: String,
    /// How many orders they have in the database.
    pub orders: i64,
    /// What those cost, in cents.
    pub spent_cents: i64,
}
