// The field app's one activity: pick or take a photo, set the country (empty by default: then the photo's GPS, else
// this phone's coarse position, read offline; never the locale's, which says the language, not where the phone is),
// see the answer; a second tab benchmarks the classifier on the last photo. All calls into snakeid run off the main
// thread.
package org.snakeid.field

import android.Manifest
import android.annotation.SuppressLint
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.location.LocationManager
import android.os.Build
import android.os.Bundle
import androidx.activity.ComponentActivity
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.activity.compose.setContent
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.compose.foundation.background
import androidx.compose.foundation.layout.*
import androidx.compose.material3.*
import androidx.compose.runtime.*
import androidx.compose.ui.Modifier
import androidx.compose.ui.graphics.Color
import androidx.compose.ui.text.font.FontStyle
import androidx.compose.ui.text.font.FontWeight
import androidx.compose.ui.unit.dp
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import org.snakeid.BenchmarkReport
import org.snakeid.CountrySource
import org.snakeid.Identification
import org.snakeid.Location
import org.snakeid.SnakeId
import org.snakeid.SnakeIdException
import org.snakeid.SnakeVerdict
import java.io.ByteArrayOutputStream
import java.util.Locale

class MainActivity : ComponentActivity() {
    private var photo by mutableStateOf<ByteArray?>(null)
    private var country by mutableStateOf("")
    private var answer by mutableStateOf<Identification?>(null)
    private var report by mutableStateOf<BenchmarkReport?>(null)
    private var error by mutableStateOf<String?>(null)
    private var busy by mutableStateOf(false)
    // This phone's position, used for the country when none is typed and the photo has no GPS position.
    private var position by mutableStateOf<Location?>(null)
    private var positionNote by mutableStateOf("")

    // Asked once per launch; coarse location is enough to tell a country and needs no network.
    private val askPosition = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) readPosition() else positionNote = "Position not allowed: type the country above."
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        // Load (compile) the model early, in the background, so the first photo is answered quickly.
        lifecycleScope.launch(Dispatchers.Default) { runCatching { SnakeId.shared() } }
        if (checkSelfPermission(Manifest.permission.ACCESS_COARSE_LOCATION) == PackageManager.PERMISSION_GRANTED) {
            readPosition()
        } else {
            askPosition.launch(Manifest.permission.ACCESS_COARSE_LOCATION)
        }
        setContent { MaterialTheme { Screens() } }
    }

    /** The newest position any provider holds (the framework's LocationManager: no Play services, no network), then
     *  on Android 11+ a fresh fix from the first provider that gives one. */
    @SuppressLint("MissingPermission") // called only once ACCESS_COARSE_LOCATION is granted
    private fun readPosition() {
        val lm = getSystemService(LocationManager::class.java) ?: return
        val providers = lm.getProviders(true)
        fun take(fix: android.location.Location?) {
            if (fix != null) position = Location(fix.latitude, fix.longitude)
            positionNote = if (position == null) "Position not known yet: type the country above." else ""
        }
        take(providers.mapNotNull { lm.getLastKnownLocation(it) }.maxByOrNull { it.time })
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.R && providers.isNotEmpty()) {
            lm.getCurrentLocation(providers.first(), null, mainExecutor) { take(it) }
        }
    }

    private fun run(block: suspend () -> Unit) {
        busy = true
        error = null
        lifecycleScope.launch {
            try {
                block()
            } catch (e: SnakeIdException) {
                error = e.message
            } finally {
                busy = false
            }
        }
    }

    private fun identify(bytes: ByteArray) {
        photo = bytes
        run {
            answer = withContext(Dispatchers.Default) {
                SnakeId.shared().identify(bytes, country = country.trim().ifEmpty { null }, topK = 3u, location = position)
            }
        }
    }

    @Composable
    private fun Screens() {
        var tab by remember { mutableIntStateOf(0) }
        Column(Modifier.fillMaxSize().padding(16.dp)) {
            TabRow(selectedTabIndex = tab) {
                Tab(selected = tab == 0, onClick = { tab = 0 }, text = { Text("Identify") })
                Tab(selected = tab == 1, onClick = { tab = 1 }, text = { Text("Benchmark") })
            }
            Spacer(Modifier.height(12.dp))
            if (tab == 0) IdentifyScreen() else BenchmarkScreen()
        }
    }

    @Composable
    private fun IdentifyScreen() {
        val pick = rememberLauncherForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
            uri?.let { u -> contentResolver.openInputStream(u)?.use { identify(it.readBytes()) } }
        }
        val take = rememberLauncherForActivityResult(ActivityResultContracts.TakePicturePreview()) { bitmap ->
            bitmap?.let { identify(ByteArrayOutputStream().also { o -> it.compress(Bitmap.CompressFormat.JPEG, 95, o) }.toByteArray()) }
        }
        Row(horizontalArrangement = Arrangement.spacedBy(8.dp)) {
            Button(onClick = { take.launch(null) }, enabled = !busy) { Text("Take photo") }
            Button(onClick = { pick.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly)) }, enabled = !busy) {
                Text("Pick photo")
            }
        }
        OutlinedTextField(
            value = country,
            onValueChange = { country = it },
            label = { Text("Country (ISO code or name; empty = where this phone is)") },
            singleLine = true,
            modifier = Modifier.fillMaxWidth(),
        )
        if (positionNote.isNotEmpty()) Text(positionNote, style = MaterialTheme.typography.bodySmall)
        if (busy) LinearProgressIndicator(Modifier.fillMaxWidth().padding(vertical = 8.dp))
        error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        answer?.let { AnswerView(it) }
    }

    @Composable
    private fun AnswerView(a: Identification) {
        Spacer(Modifier.height(12.dp))
        val pSnake = "%.0f%%".format(a.snakeProbability * 100)
        Text(
            when (a.snakeVerdict) {
                SnakeVerdict.SNAKE -> "Snake ($pSnake)"
                SnakeVerdict.POSSIBLE -> "Possibly a snake ($pSnake)"
                SnakeVerdict.NO_SNAKE -> "No snake recognised in this photo ($pSnake)"
            },
            fontWeight = FontWeight.Bold,
        )
        if (a.venomousWarning) {
            val named = a.warningSpecies.joinToString(", ") { "%s %.0f%%".format(it.label, it.probability * 100) }
            Text(
                "POSSIBLY VENOMOUS ($named) — seek medical care",
                color = Color.White, fontWeight = FontWeight.Bold,
                modifier = Modifier.fillMaxWidth().background(Color(0xFFC62828)).padding(12.dp),
            )
        }
        if (a.uncertain) {
            Text(
                "Uncertain — treat as venomous and seek care",
                color = Color(0xFFC62828), fontWeight = FontWeight.Bold, modifier = Modifier.padding(vertical = 8.dp),
            )
        }
        // "None" reads as none: no species (and no "venomous") under "no snake".
        if (a.snakeVerdict == SnakeVerdict.NO_SNAKE) {
            Text("If there is a snake, photograph it whole, closer and in focus, and try again.")
        }
        a.predictions.takeIf { a.snakeVerdict != SnakeVerdict.NO_SNAKE }.orEmpty().forEach { p ->
            Row(Modifier.fillMaxWidth().padding(vertical = 4.dp), horizontalArrangement = Arrangement.SpaceBetween) {
                Column {
                    Text(p.label, fontWeight = FontWeight.SemiBold)
                    Text(p.scientificName, fontStyle = FontStyle.Italic)
                }
                Text("%.1f%%%s".format(p.probability * 100, if (p.venomous) "  venomous" else ""))
            }
        }
        // "Philippines (from this phone's location)": the country's name in the phone's language, and its source.
        val place = a.country?.let { code ->
            val name = Locale("", code).displayCountry.ifEmpty { code }
            name + when (a.countrySource) {
                CountrySource.PHOTO_GPS -> " (from the photo's GPS)"
                CountrySource.DEVICE_LOCATION -> " (from this phone's location)"
                else -> ""
            }
        } ?: "country unknown"
        Text(
            "$place${if (a.priorApplied) " · range prior applied" else ""} · %.0f ms · %s".format(a.timingsMs.total, a.backend),
            style = MaterialTheme.typography.bodySmall,
        )
    }

    @Composable
    private fun BenchmarkScreen() {
        Text("Runs 30 identifications of the last photo and reports the same numbers as `snakeid bench`.")
        Button(onClick = {
            val bytes = photo ?: return@Button run { error = "Take or pick a photo first." }
            run { report = withContext(Dispatchers.Default) { SnakeId.shared().benchmark(bytes, 30u) } }
        }, enabled = !busy) { Text("Run benchmark") }
        if (busy) LinearProgressIndicator(Modifier.fillMaxWidth())
        error?.let { Text(it, color = MaterialTheme.colorScheme.error) }
        report?.let { r ->
            val s = r.stagesMs
            listOf(
                "cold start" to "%.0f ms".format(r.coldStartMs),
                "first call" to "%.0f ms".format(r.firstCallMs),
                "decode p50" to "%.1f ms".format(s.decode.p50),
                "preprocess p50" to "%.1f ms".format(s.preprocess.p50),
                "inference p50 / p90 / p99" to "%.1f / %.1f / %.1f ms".format(s.inference.p50, s.inference.p90, s.inference.p99),
                "total p50 / p90 / p99" to "%.1f / %.1f / %.1f ms".format(s.total.p50, s.total.p90, s.total.p99),
                "peak RSS" to "%.0f MB".format(r.peakRssMb),
                "backend / threads" to "${r.backend} / ${r.threads}",
            ).forEach { (k, v) ->
                Row(Modifier.fillMaxWidth(), horizontalArrangement = Arrangement.SpaceBetween) { Text(k); Text(v) }
            }
        }
    }
}
