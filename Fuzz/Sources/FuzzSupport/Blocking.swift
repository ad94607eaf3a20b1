// SPDX-License-Identifier: Apache-2.0
import Dispatch

/// Runs async code to completion from libFuzzer's synchronous callback. The callback runs on
/// libFuzzer's own thread, never on Swift's cooperative pool, so blocking it is safe.
public func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task.detached {
    box.value = await body()
    done.signal()
  }
  done.wait()
  guard let value = box.value else { violated("the async body returned no value") }
  return value
}

/// Carries the result out of the task. Written by the task before `signal`, read after
/// `wait`: the semaphore orders the two, hence @unchecked.
private final class ResultBox<T>: @unchecked Sendable {
  var value: T?
}
