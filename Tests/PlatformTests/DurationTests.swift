import Testing

@testable import Platform

@Suite struct DurationNanosecondsTests {
    /// Whole nanoseconds, a fraction dropped, and the extremes clamped instead of trapping.
    @Test func convertsAndClamps() {
        #expect(Duration.seconds(5).wholeNanoseconds == 5_000_000_000)
        #expect(Duration.milliseconds(1500).wholeNanoseconds == 1_500_000_000)
        #expect((Duration.nanoseconds(3) + .nanoseconds(1) / 2).wholeNanoseconds == 3)
        #expect(Duration.seconds(-2).wholeNanoseconds == -2_000_000_000)
        #expect(Duration.seconds(Int64.max).wholeNanoseconds == Int.max)
        #expect(Duration.seconds(Int64.min).wholeNanoseconds == Int.min)
    }
}
