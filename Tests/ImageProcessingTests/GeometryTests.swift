import ImageProcessing
import InferenceCore
import Testing

/// Crop geometry rules, checked on hand-computed cases (the fixtures check them against torchvision too).
@Suite("Geometry")
struct GeometryTests {
    @Test func shortestTruncatesTheLongSide() {
        let p = ImagePreprocessor(config: PreprocessConfig(size: 224))
        // 224 * 517 / 93 = 1245.2 -> 1245; crop left = round((1245 - 224) / 2) = round(510.5) = 510 (half to even).
        #expect(p.geometry(width: 517, height: 93) == .init(resizedWidth: 1245, resizedHeight: 224, left: 510, top: 0))
        // 224 * 403 / 71 = 1271.4 -> 1271; top = round(523.5) = 524 (half to even rounds up here).
        #expect(p.geometry(width: 71, height: 403) == .init(resizedWidth: 224, resizedHeight: 1271, left: 0, top: 524))
    }

    @Test func huggingFaceFloorsTheCrop() {
        let p = ImagePreprocessor(config: PreprocessConfig(size: 224, pipeline: .huggingFace))
        #expect(p.geometry(width: 517, height: 93).left == 510)  // (1245 - 224) // 2 = 510
        #expect(p.geometry(width: 71, height: 403).top == 523)  // (1271 - 224) // 2 = 523
    }

    @Test func longestPadsAroundTheImage() {
        let p = ImagePreprocessor(config: PreprocessConfig(size: 75, resizeMode: .longest, fillColor: 77))
        // 517x93 -> 75x13 (93 / (517 / 75) = 13.49 -> 13); pad (75 - 13) // 2 = 31 above.
        #expect(p.geometry(width: 517, height: 93) == .init(resizedWidth: 75, resizedHeight: 13, left: 0, top: -31))
    }

    @Test func squashIgnoresAspect() {
        let p = ImagePreprocessor(config: PreprocessConfig(size: 96, resizeMode: .squash))
        #expect(p.geometry(width: 7, height: 5) == .init(resizedWidth: 96, resizedHeight: 96, left: 0, top: 0))
    }
}
