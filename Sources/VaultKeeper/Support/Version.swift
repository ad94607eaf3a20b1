// SPDX-License-Identifier: Apache-2.0
public enum VaultKeeperVersion { public static let string = "0.1.0" }
