fn main() {
    let path = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let v = coresh::coredb::soundness::check(&path).unwrap();
        println!("check: {:?} in {:?}", v.map(|_| "ok"), t.elapsed());
    }
}
