// Small conveniences over the generated bindings (snakeid.kt): one shared Classifier per process and the
// device's country. Pure Kotlin/JVM, so it is compiled and tested on the desktop JVM too (tests/bindings/run.sh).
package org.snakeid

import java.util.Locale

object SnakeId {
    @Volatile private var shared: Classifier? = null

    /**
     * The process-wide classifier over the embedded default bundle. Loading compiles the model (hundreds of
     * milliseconds): call this off the main thread. The same instance is safe to use from any thread. A field app
     * identifies one photo at a time, so each call runs on [SHARED_THREADS] threads (fewer on a one-core device):
     * on a 12 MP photo two threads answered in about 0.6x the time of one (BENCHMARKS.md, session 9; x86).
     */
    @Throws(SnakeIdException::class)
    fun shared(): Classifier =
        shared ?: synchronized(this) {
            shared ?: Classifier(minOf(SHARED_THREADS, Runtime.getRuntime().availableProcessors()).toUInt()).also { shared = it }
        }

    /** Threads per call of the [shared] classifier. */
    const val SHARED_THREADS = 2

    /**
     * The country to pass to [Classifier.identify]: the locale's ISO 3166-1 alpha-2 region, or null when the locale
     * has none (then no prior is applied). The app lets the user override it.
     */
    fun countryOf(locale: Locale = Locale.getDefault()): String? =
        locale.country.takeIf { it.length == 2 && it.all(Char::isLetter) }?.uppercase(Locale.ROOT)
}
