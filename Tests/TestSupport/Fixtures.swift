import Foundation

/// Locations of the committed fixtures made by `scripts/make_fixtures.py`.
public enum Fixtures {
    /// `Tests/Fixtures`, found from this file's path so tests need no bundle resources.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Fixtures")
}
