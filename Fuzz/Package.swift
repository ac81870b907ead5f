// swift-tools-version: 5.4
// libFuzzer targets for ChurnGrid's decoders and loaders (docs/fuzzing.md). A package of its own so
// that the main package keeps one executable; built and run by `make fuzz` from the folder above.
//
// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's entry point to
// `<Module>_main` and links `main` to it, which leaves nothing for libFuzzer's own `main` to call
// (the targets are built with -parse-as-library and only define LLVMFuzzerTestOneInput).
import PackageDescription

/// The main package is this folder's parent; a path dependency is known by its folder's name.
let main = "\(#filePath)".split(separator: "/").dropLast(2).last.map { String($0).lowercased() } ?? "main"

func fuzzTarget(_ name: String, _ products: [String]) -> Target {
    .executableTarget(name: name, dependencies: products.map { .product(name: $0, package: main) })
}

let package = Package(
    name: "ChurnGridFuzz",
    dependencies: [.package(path: "..")],
    targets: [
        fuzzTarget("FuzzWire", ["WireFormat"]),
        fuzzTarget("FuzzFrame", ["ClusterSystem"]),
        fuzzTarget("FuzzXGBoost", ["TreeModel"]),
        fuzzTarget("FuzzLightGBM", ["TreeModel"]),
        fuzzTarget("FuzzCSV", ["FeatureTable"]),
        fuzzTarget("FuzzSchema", ["SubscriberProfiles"]),
    ]
)
