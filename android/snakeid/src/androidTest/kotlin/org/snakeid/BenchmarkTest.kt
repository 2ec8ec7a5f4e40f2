// Instrumented benchmark on a real device: loads the embedded bundle, identifies a bundled photo, and reports
// the same numbers as `snakeid bench` (cold start, first call, p50/p90/p99 per stage, peak RSS) to the test log
// and as instrumentation results. Run with: ./gradlew :snakeid:connectedAndroidTest
package org.snakeid

import android.os.Bundle
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith

@RunWith(AndroidJUnit4::class)
class BenchmarkTest {
    private fun photo(): ByteArray =
        InstrumentationRegistry.getInstrumentation().context.assets.open("rocket.jpg").use { it.readBytes() }

    @Test
    fun identifiesAndThrowsTypedErrors() {
        Classifier().use { c ->
            val answer = c.identify(photo(), "IN", 3u)
            assertEquals(3, answer.predictions.size)
            assertTrue(answer.timingsMs.total > 0)
            try {
                c.identify(ByteArray(16), null, 3u)
                throw AssertionError("garbage bytes were accepted")
            } catch (e: SnakeIdException.InvalidImage) {
                assertTrue(e.message!!.isNotBlank())
            }
        }
    }

    @Test
    fun benchmark() {
        Classifier().use { c ->
            val r = c.benchmark(photo(), 50u)
            val s = r.stagesMs
            val line = "snakeid bench: cold_start_ms=%.1f first_call_ms=%.1f total p50=%.2f p90=%.2f p99=%.2f inference p50=%.2f decode p50=%.2f peak_rss_mb=%.1f"
                .format(r.coldStartMs, r.firstCallMs, s.total.p50, s.total.p90, s.total.p99, s.inference.p50, s.decode.p50, r.peakRssMb)
            println(line)
            InstrumentationRegistry.getInstrumentation().sendStatus(0, Bundle().apply { putString("snakeid-bench", line) })
            assertTrue(s.total.p50 > 0 && s.total.p50 <= s.total.p99)
        }
    }
}
