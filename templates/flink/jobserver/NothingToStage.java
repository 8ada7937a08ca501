package beamimageinference;

import java.util.Collections;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/**
 * Lists no jar for a job to ship. Beam's job server otherwise ships its own class path with every job: the
 * 157 MB job server jar, uploaded to the JobManager and fetched by each TaskManager, about 2 s of every job's
 * start-up on one machine. The cluster started by flink.sh has the runner's classes in its lib folders
 * instead. Chosen per job with --pipeline_resources_detector_factory_class=beamimageinference.NothingToStage
 * (flink.sh flags); flink.sh compiles it against the job server jar.
 */
public class NothingToStage implements PipelineResourcesDetector.Factory {
  public static NothingToStage create() {
    return new NothingToStage();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return classLoader -> Collections.emptyList();
  }
}
