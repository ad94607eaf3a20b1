public enum VaultKeeperVersion { public static let string = "0.1.0" }
