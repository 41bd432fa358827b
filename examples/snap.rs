fn main() {
    let db = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let dir = std::path::PathBuf::from(std::env::args().nth(2).unwrap());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let p = coresh::replication::snapshot::take(&db, &dir).unwrap();
        println!("take {:?}", t.elapsed());
        std::fs::remove_file(p).unwrap();
    }
}
