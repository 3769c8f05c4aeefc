import Phi4

/// `const char *phi4_version(void)`: the library's version string (static storage).
@_cdecl("phi4_version")
public func phi4_version() -> UnsafePointer<CChar> {
    versionCString
}

private let versionCString: UnsafePointer<CChar> = {
    let bytes = Array(Phi4Version.string.utf8CString)
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: bytes.count)
    p.initialize(from: bytes, count: bytes.count)
    return UnsafePointer(p)
}()
