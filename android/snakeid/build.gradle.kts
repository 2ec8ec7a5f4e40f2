// The `snakeid` Android library: generated Kotlin bindings (JNA) + libsnakeid_ffi.so per ABI, built by cargo-ndk.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "org.snakeid"
    compileSdk = 35
    ndkVersion = "27.2.12479018"

    defaultConfig {
        minSdk = 24
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    // jniLibs/<abi>/libsnakeid_ffi.so are written by the cargoNdk task below (not committed).
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
    // The instrumented tests read the repository's licence-clean test photos.
    sourceSets["androidTest"].assets.srcDirs("../../tests/data/photos")
}

dependencies {
    // The AAR flavour of JNA carries libjnidispatch.so for every Android ABI.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    androidTestImplementation("androidx.test.ext:junit:1.2.1")
    androidTestImplementation("androidx.test:runner:1.6.2")
    androidTestImplementation("androidx.test:rules:1.6.1")
}

// Builds the Rust library for every ABI we ship (needs `cargo install cargo-ndk` and the NDK above).
val cargoNdk by tasks.registering(Exec::class) {
    val repo = rootProject.projectDir.parentFile
    workingDir = repo
    commandLine(
        "cargo", "ndk",
        "-t", "arm64-v8a", "-t", "armeabi-v7a", "-t", "x86_64",
        "-o", project.file("src/main/jniLibs").absolutePath,
        // The phone profile (smallest code), without the thread pool: one call per thread (BENCHMARKS.md, sizes).
        "build", "--profile", "mobile", "--locked", "-p", "snakeid-ffi", "--no-default-features", "--features", "embedded-default",
    )
}
tasks.named("preBuild") { dependsOn(cargoNdk) }
