// Small conveniences over the generated bindings (snakeid.kt): one shared Classifier per process and the
// device's country. Pure Kotlin/JVM, so it is compiled and tested on the desktop JVM too (tests/bindings/run.sh).
// Named SharedClassifier.kt, not SnakeId.kt, which differs from snakeid.kt only in case and collided on the
// case-insensitive checkouts of macOS and Windows (issue 39).
package org.snakeid

import java.util.Locale

object SnakeId {
    @Volatile private var shared: Classifier? = null

    /**
     * The process-wide classifier over the embedded default bundle. Loading compiles the model (hundreds of
     * milliseconds): call this off the main thread. The same instance is safe to use from any thread. Each call runs
     * on its caller's thread: the phone libraries are built without the thread pool, which would add 4.7 MB of code
     * per ABI to save milliseconds on one photo (BENCHMARKS.md, "Library size per ABI").
     */
    @Throws(SnakeIdException::class)
    fun shared(): Classifier =
        shared ?: synchronized(this) {
            shared ?: Classifier(1u).also { shared = it }
        }

    /**
     * The country to pass to [Classifier.identify]: the locale's ISO 3166-1 alpha-2 region, or null when the locale
     * has none (then no prior is applied). The app lets the user override it.
     */
    fun countryOf(locale: Locale = Locale.getDefault()): String? =
        locale.country.takeIf { it.length == 2 && it.all(Char::isLetter) }?.uppercase(Locale.ROOT)
}
