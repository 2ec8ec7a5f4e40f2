// Runs the generated Kotlin bindings on the desktop JVM (JNA) against the built libsnakeid_ffi:
// answers, errors as exceptions, threads, benchmark. Run by tests/bindings/run.sh; exits non-zero on any failure.

import org.snakeid.Classifier
import org.snakeid.Limits
import org.snakeid.SnakeId
import org.snakeid.SnakeIdException
import org.snakeid.SnakeVerdict
import java.io.File
import java.util.concurrent.Callable
import java.util.concurrent.Executors

val root = File(System.getenv("SNAKEID_ROOT"))
fun photo(name: String): ByteArray = File(root, "tests/data/photos/$name").readBytes()
val bundleFile = File(root, "models/default/snakeid-default.snkb")

var passed = 0
var failed = 0

fun test(name: String, body: () -> Unit) {
    try {
        body()
        passed++
        println("ok   $name")
    } catch (t: Throwable) {
        failed++
        println("FAIL $name: $t")
    }
}

inline fun <reified E : Throwable> assertThrows(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

fun peakRssMb(): Double =
    File("/proc/self/status").readLines().first { it.startsWith("VmHWM:") }.split(Regex("\\s+"))[1].toDouble() / 1024

/** Run in its own JVM with SNAKEID_FAILPOINTS="load=1,inference=2" (the test build's forced panics): each panic
 *  reaches Kotlin as SnakeIdException.Internal, and the library keeps working. */
fun failpoints() {
    val jpeg = photo("rocket.jpg")
    test("a forced panic while loading throws Internal, the next load works") {
        val e = assertThrows<SnakeIdException.Internal> { Classifier() }
        check(e.message!!.contains("failpoint load")) { e.message!! }
    }
    Classifier().use { classifier ->
        test("forced panics in inference throw Internal, then the classifier answers") {
            repeat(2) { assertThrows<SnakeIdException.Internal> { classifier.identify(jpeg, "IN", 5u) } }
            val a = classifier.identify(jpeg, "IN", 5u)
            check(a.predictions.size == 5 && a.predictions == classifier.identify(jpeg, "IN", 5u).predictions)
        }
    }
}

fun main(args: Array<String>) {
    if (args.firstOrNull() == "failpoints") {
        failpoints()
        println("kotlin failpoints: $passed passed, $failed failed")
        if (failed > 0 || passed == 0) kotlin.system.exitProcess(1)
        return
    }
    test("limits: a photo larger than asked is InvalidImage; the defaults are the library's") {
        val defaults = Limits()
        check(defaults == Limits(maxBytes = 64uL shl 20, maxSide = 20_000u, maxPixels = 100_000_000uL)) { defaults.toString() }
        Classifier(limits = Limits(maxPixels = 10_000uL)).use { small ->
            val e = assertThrows<SnakeIdException.InvalidImage> { small.identify(photo("rocket.jpg")) }
            check(e.message!!.contains("exceeds the limit")) { e.message!! }
        }
    }
    Classifier().use { classifier ->
        test("identify ranks species with probabilities") {
            val a = classifier.identify(photo("chelsea.png"), "IN", 3u)
            check(a.backend == "cpu" && a.country == "IN" && a.priorApplied)
            check(a.predictions.size == 3)
            val probs = a.predictions.map { it.probability }
            check(probs == probs.sortedDescending() && probs.all { it in 0f..1f })
            check(a.predictions[0].scientificName.isNotEmpty())
            check(a.timingsMs.inference > 0 && a.timingsMs.total >= a.timingsMs.inference)
        }
        test("defaults: no country, five species; named arguments read as the Python ones") {
            val a = classifier.identify(photo("rocket.jpg"))
            check(a.country == null && !a.priorApplied && a.predictions.size == 5) { a.toString() }
            check(a.predictions == classifier.identify(photo("rocket.jpg"), null, 5u).predictions)
            val b = classifier.identify(photo("rocket.jpg"), country = "IN", topK = 2u)
            check(b.priorApplied && b.predictions.size == 2)
            // Far under the `none` line: one view answers; the records print their fields by name.
            check(a.snakeVerdict == SnakeVerdict.NO_SNAKE && a.view == "primary" && a.viewsRun == 1u) { a.toString() }
            val p = a.predictions[0]
            check(p.toString().contains("scientificName=${p.scientificName}") && p.toString().contains("probability=")) { p.toString() }
        }
        test("bad images throw InvalidImage and the classifier keeps working") {
            val jpeg = photo("rocket.jpg")
            for (bad in listOf(ByteArray(0), "not an image".toByteArray(), jpeg.copyOf(jpeg.size / 3))) {
                val e = assertThrows<SnakeIdException.InvalidImage> { classifier.identify(bad, null, 3u) }
                check(!e.message.isNullOrBlank() && !e.message!!.contains('\n'))
            }
            check(classifier.identify(jpeg, null, 3u).predictions.isNotEmpty())
        }
        test("unknown country throws UnknownCountry with suggestions") {
            val e = assertThrows<SnakeIdException.UnknownCountry> { classifier.identify(photo("chelsea.png"), "Indai", 3u) }
            check(e.message!!.contains("did you mean IN")) { e.message!! }
        }
        test("bad bundles throw InvalidBundle") {
            assertThrows<SnakeIdException.InvalidBundle> { Classifier.fromBundlePath("/no/such/bundle.snkb") }
            val tampered = bundleFile.readBytes()
            tampered[tampered.size / 2] = (tampered[tampered.size / 2].toInt() xor 1).toByte()
            assertThrows<SnakeIdException.InvalidBundle> { Classifier.fromBundleBytes(tampered) }
        }
        test("signed bundles load only with a trusted key") {
            val dir = kotlin.io.path.createTempDirectory("snakeid-kt").toFile()
            fun cli(vararg a: String): String {
                val p = ProcessBuilder(System.getenv("SNAKEID_CLI"), *a).redirectError(ProcessBuilder.Redirect.INHERIT).start()
                val out = p.inputStream.bufferedReader().readText()
                check(p.waitFor() == 0) { "snakeid ${a.toList()} failed" }
                return out.trim()
            }
            val publisher = cli("bundle", "keygen", "--out", File(dir, "publisher.key").path)
            val stranger = cli("bundle", "keygen", "--out", File(dir, "stranger.key").path)
            val signed = File(dir, "signed.snkb")
            cli("bundle", "sign", bundleFile.path, "--key", File(dir, "publisher.key").path, "--out", signed.path)
            Classifier.fromBundleBytesSigned(signed.readBytes(), listOf(publisher)).use { c ->
                check(c.identify(photo("rocket.jpg"), "IN", 3u).predictions.isNotEmpty())
            }
            assertThrows<SnakeIdException.UntrustedBundle> { Classifier.fromBundlePathSigned(signed.path, listOf(stranger)) }
            assertThrows<SnakeIdException.UntrustedBundle> { Classifier.fromBundlePathSigned(bundleFile.path, listOf(publisher)) }
            dir.deleteRecursively()
        }
        test("three verdicts, and the warning names only species above its threshold") {
            val dir = kotlin.io.path.createTempDirectory("snakeid-kt-gate").toFile()
            val coffee = photo("coffee.png")
            val p = classifier.identify(coffee, "IN", 3u).snakeProbability
            // The default bundle with its snake gate moved (threshold, margin), unpacked and packed by the CLI.
            fun withGate(name: String, threshold: Float, margin: Float): String {
                val src = File(dir, name)
                check(ProcessBuilder(System.getenv("SNAKEID_CLI"), "bundle", "unpack", "--out", src.path).start().waitFor() == 0)
                val manifest = File(src, "manifest.json")
                manifest.writeText(manifest.readText()
                    .replace(Regex("\"snake_threshold\":\\s*[0-9.eE+-]+"), "\"snake_threshold\": $threshold")
                    .replace(Regex("\"gate_margin\":\\s*[0-9.eE+-]+"), "\"gate_margin\": $margin"))
                val out = File(dir, "$name.snkb").path
                check(ProcessBuilder(System.getenv("SNAKEID_CLI"), "bundle", "pack", src.path, "--out", out).start().waitFor() == 0)
                return out
            }
            // No committed photo shows a snake (P(snake) ~ 1e-7): the gate is moved to the photo, by factors of P.
            for ((gate, want) in listOf(
                Triple(p / 2, p, true) to SnakeVerdict.POSSIBLE,
                Triple(2 * p, 2 * p, false) to SnakeVerdict.POSSIBLE,
                Triple(p / 2, p / 4, true) to SnakeVerdict.SNAKE,
                Triple(2 * p, p / 2, false) to SnakeVerdict.NO_SNAKE,
            )) {
                val (threshold, margin, detected) = gate
                Classifier.fromBundlePath(withGate("t$threshold-$margin", threshold, margin)).use { c ->
                    val a = c.identify(coffee, "IN", 3u)
                    check(a.snakeVerdict == want && a.snakeDetected == detected) { "$gate: ${a.snakeVerdict}" }
                    check(a.venomousWarning == (want != SnakeVerdict.NO_SNAKE) && a.venomousWarning == a.warningSpecies.isNotEmpty())
                    check(a.warningSpecies.all { it.venomous && it.probability >= 0.1f })
                }
            }
            dir.deleteRecursively()
        }
        test("bundle from bytes answers like the embedded one") {
            val want = classifier.identify(photo("coffee.png"), "BR", 5u)
            Classifier.fromBundleBytes(bundleFile.readBytes()).use { c ->
                check(c.identify(photo("coffee.png"), "BR", 5u).predictions == want.predictions)
            }
        }
        test("a classifier on two threads answers like one") {
            val jpeg = photo("rocket.jpg")
            Classifier(threads = 2u).use { c -> check(c.identify(jpeg, "US", 5u).predictions == classifier.identify(jpeg, "US", 5u).predictions) }
        }
        test("bundle info lists species with venom status and countries") {
            val info = classifier.bundleInfo()
            check(info.species.size == 17 && info.numClasses == 1000u)
            check(info.species.single { it.scientificName == "Naja naja" }.venomous)
            check("IN" in info.countries)
        }
        test("many threads share one classifier") {
            val names = listOf("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp")
            val want = names.associateWith { classifier.identify(photo(it), "US", 5u).predictions }
            val pool = Executors.newFixedThreadPool(4)
            try {
                val futures = (names + names + names).map { n -> pool.submit(Callable { n to classifier.identify(photo(n), "US", 5u).predictions }) }
                for (f in futures) {
                    val (n, got) = f.get()
                    check(got == want[n]) { "thread answer differs for $n" }
                }
            } finally {
                pool.shutdown()
            }
        }
        test("soak: 4 threads x many calls, same answers, peak RSS flat") {
            val names = listOf("chelsea.png", "coffee.png", "rocket.jpg", "astronaut.webp")
            val photos = names.associateWith { photo(it) }
            val want = names.associateWith { classifier.identify(photos[it]!!, "US", 5u).predictions }
            val pool = Executors.newFixedThreadPool(4)
            fun soak(calls: Int) {
                val futures = (0 until calls).map { i ->
                    val n = names[i % 4]
                    pool.submit(Callable { n to classifier.identify(photos[n]!!, "US", 5u).predictions })
                }
                for (f in futures) {
                    val (n, got) = f.get()
                    check(got == want[n]) { "soak answer differs for $n" }
                }
            }
            try {
                soak(400) // the JVM settles (JIT, GC heuristics) over the first few hundred calls
                System.gc()
                val base = peakRssMb()
                soak(System.getenv("SNAKEID_SOAK_CALLS")?.toInt() ?: 200)
                System.gc()
                val end = peakRssMb()
                println("     soak: peak RSS %.1f MB after warm-up, %.1f MB at the end".format(base, end))
                check(end <= base * 1.05) { "peak RSS grew from $base to $end MB" }
            } finally {
                pool.shutdown()
            }
        }
        test("benchmark reports percentiles and peak RSS") {
            val r = classifier.benchmark(photo("rocket.jpg"), 5u)
            check(r.iterations == 5u && r.backend == "cpu" && r.coldStartMs > 0 && r.peakRssMb > 10)
            val t = r.stagesMs.total
            check(0 < t.p50 && t.p50 <= t.p90 && t.p90 <= t.p99)
        }
    }
    test("Android wrapper: one shared classifier") {
        check(SnakeId.shared() === SnakeId.shared())
        check(SnakeId.shared().identify(photo("rocket.jpg"), "IN", 1u).country == "IN")
    }
    println("kotlin: $passed passed, $failed failed")
    if (failed > 0) kotlin.system.exitProcess(1)
}
