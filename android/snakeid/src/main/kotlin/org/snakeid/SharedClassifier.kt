// A small convenience over the generated bindings (snakeid.kt): one shared Classifier per process. Pure Kotlin/JVM,
// so it is compiled and tested on the desktop JVM too (tests/bindings/run.sh). No country from the locale: a phone's
// language is not where it is (issue 35).
// Named SharedClassifier.kt, not SnakeId.kt, which differs from snakeid.kt only in case and collided on the
// case-insensitive checkouts of macOS and Windows (issue 39).
package org.snakeid

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
}
