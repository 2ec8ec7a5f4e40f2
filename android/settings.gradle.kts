// snakeid for Android: the `snakeid` library module (generated UniFFI bindings + native libraries) and the field app.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "snakeid-android"
include(":snakeid", ":app")
