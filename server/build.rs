// `sqlx::migrate!` embeds each migration file it finds, and the compiler
// watches those; a migration added later is only seen if the directory is.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
