/// The library's version.
public enum Phi4Version {
    /// Semantic version of libphi4.
    public static let string = "0.2.0"
}
