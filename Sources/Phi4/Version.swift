import CPhi4ABI

/// The library's version.
public enum Phi4Version {
    /// Semantic version of libphi4, "MAJOR.MINOR.PATCH". Its one source is the `PHI4_VERSION_*`
    /// macros of include/phi4.h, which the C library, the Python package and `make install` read too.
    public static let string = "\(PHI4_VERSION_MAJOR).\(PHI4_VERSION_MINOR).\(PHI4_VERSION_PATCH)"

    /// The C ABI version of include/phi4.h (`PHI4_ABI_VERSION`).
    public static let abi = Int(PHI4_ABI_VERSION)
}
