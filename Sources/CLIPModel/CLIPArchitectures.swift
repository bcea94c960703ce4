import InferenceCore

/// The plain CLIP ViT image towers of open_clip's `model_configs` that clipserve runs, by config name.
public enum CLIPArchitectures {
    /// Every architecture, in open_clip's config names (vision tower numbers copied from open_clip 3.3.0's JSON;
    /// mlp width is `int(width * mlp_ratio)` as open_clip computes it).
    public static let table: [(name: String, spec: VisionTowerSpec)] = [
        ("ViT-B-16", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 768, layers: 12, headWidth: 64, mlpWidth: 3072, embedDim: 512)),
        ("ViT-B-16-plus", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 896, layers: 12, headWidth: 64, mlpWidth: 3584, embedDim: 640)),
        ("ViT-B-16-plus-240", VisionTowerSpec(imageSize: 240, patchSize: 16, width: 896, layers: 12, headWidth: 64, mlpWidth: 3584, embedDim: 640)),
        ("ViT-B-16-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 768, layers: 12, headWidth: 64, mlpWidth: 3072, embedDim: 512, activation: .quickGELU)),
        ("ViT-B-32", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 768, layers: 12, headWidth: 64, mlpWidth: 3072, embedDim: 512)),
        ("ViT-B-32-256", VisionTowerSpec(imageSize: 256, patchSize: 32, width: 768, layers: 12, headWidth: 64, mlpWidth: 3072, embedDim: 512)),
        ("ViT-B-32-plus-256", VisionTowerSpec(imageSize: 256, patchSize: 32, width: 896, layers: 12, headWidth: 64, mlpWidth: 3584, embedDim: 640)),
        ("ViT-B-32-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 768, layers: 12, headWidth: 64, mlpWidth: 3072, embedDim: 512, activation: .quickGELU)),
        ("ViT-H-14", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024)),
        ("ViT-H-14-378", VisionTowerSpec(imageSize: 378, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024)),
        ("ViT-H-14-378-quickgelu", VisionTowerSpec(imageSize: 378, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024, activation: .quickGELU)),
        ("ViT-H-14-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024, activation: .quickGELU)),
        ("ViT-H-16", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024)),
        ("ViT-L-14", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-L-14-280", VisionTowerSpec(imageSize: 280, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-L-14-336", VisionTowerSpec(imageSize: 336, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-L-14-336-quickgelu", VisionTowerSpec(imageSize: 336, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768, activation: .quickGELU)),
        ("ViT-L-14-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768, activation: .quickGELU)),
        ("ViT-L-16", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-L-16-320", VisionTowerSpec(imageSize: 320, patchSize: 16, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-M-16", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 512, layers: 12, headWidth: 64, mlpWidth: 2048, embedDim: 512)),
        ("ViT-M-32", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 512, layers: 12, headWidth: 64, mlpWidth: 2048, embedDim: 512)),
        ("ViT-M-32-alt", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 512, layers: 12, headWidth: 64, mlpWidth: 2048, embedDim: 384)),
        ("ViT-S-16", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 384, layers: 12, headWidth: 64, mlpWidth: 1536, embedDim: 384)),
        ("ViT-S-16-alt", VisionTowerSpec(imageSize: 224, patchSize: 16, width: 384, layers: 12, headWidth: 64, mlpWidth: 1536, embedDim: 256)),
        ("ViT-S-32", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 384, layers: 12, headWidth: 64, mlpWidth: 1536, embedDim: 384)),
        ("ViT-S-32-alt", VisionTowerSpec(imageSize: 224, patchSize: 32, width: 384, layers: 12, headWidth: 64, mlpWidth: 1536, embedDim: 256)),
        ("ViT-bigG-14", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1664, layers: 48, headWidth: 104, mlpWidth: 8192, embedDim: 1280)),
        ("ViT-bigG-14-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1664, layers: 48, headWidth: 104, mlpWidth: 8192, embedDim: 1280, activation: .quickGELU)),
        ("ViT-e-14", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1792, layers: 56, headWidth: 112, mlpWidth: 15360, embedDim: 1280)),
        ("ViT-g-14", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1408, layers: 40, headWidth: 88, mlpWidth: 6144, embedDim: 1024)),
        ("ViT-H-14-worldwide", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024)),
        ("ViT-H-14-worldwide-378", VisionTowerSpec(imageSize: 378, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024)),
        ("ViT-H-14-worldwide-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1280, layers: 32, headWidth: 80, mlpWidth: 5120, embedDim: 1024, activation: .quickGELU)),
        ("ViT-L-14-worldwide", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768)),
        ("ViT-L-14-worldwide-quickgelu", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1024, layers: 24, headWidth: 64, mlpWidth: 4096, embedDim: 768, activation: .quickGELU)),
        ("ViT-bigG-14-worldwide", VisionTowerSpec(imageSize: 224, patchSize: 14, width: 1664, layers: 48, headWidth: 104, mlpWidth: 8192, embedDim: 1280)),
        ("ViT-bigG-14-worldwide-378", VisionTowerSpec(imageSize: 378, patchSize: 14, width: 1664, layers: 48, headWidth: 104, mlpWidth: 8192, embedDim: 1280)),
    ]

    /// The names, for help texts and error messages.
    public static var names: [String] { table.map(\.name) }

    /// The spec of architecture `name` (exact, case-sensitive), or nil.
    public static func spec(named name: String) -> VisionTowerSpec? {
        table.first { $0.name == name }?.spec
    }

    /// The first architecture whose vision tower equals `spec` (plain names come before -worldwide aliases), or nil.
    public static func name(matching spec: VisionTowerSpec) -> String? {
        table.first { $0.spec == spec }?.name
    }
}
