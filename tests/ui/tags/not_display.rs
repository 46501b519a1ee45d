use cache_runtime::cached;

struct Category;

#[cached(key = "product:{id}", tags = ["category:{category}"])]
async fn product(id: u64, category: Category) -> String {
    let _ = category;
    format!("{id}")
}

fn main() {
    let _ = product(1, Category);
}
