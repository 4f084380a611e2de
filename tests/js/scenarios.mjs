// Scenarios run by tests/test_js_sdk.py with the AWS SDK for JavaScript v3 against nimbus.
// Usage: node scenarios.mjs SCENARIO. The endpoint, credentials and region come from the
// standard environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as a user would set them.
// Each scenario prints one JSON document with what the SDK returned; the Python test checks it.

import {
  AttachInternetGatewayCommand,
  CreateInternetGatewayCommand,
  CreateRouteCommand,
  CreateSubnetCommand,
  CreateVpcCommand,
  DescribeRouteTablesCommand,
  CreateKeyPairCommand,
  CreateLaunchTemplateCommand,
  DeleteLaunchTemplateCommand,
  CreateVolumeCommand,
  DeleteKeyPairCommand,
  DeleteVolumeCommand,
  DescribeKeyPairsCommand,
  DescribeRegionsCommand,
  DescribeVolumesCommand,
  EC2Client,
  waitUntilVolumeAvailable,
  waitUntilVolumeDeleted,
} from "@aws-sdk/client-ec2";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import {
  AutoScalingClient,
  CreateAutoScalingGroupCommand,
  DeleteAutoScalingGroupCommand,
  DescribeAutoScalingGroupsCommand,
  DescribeScalingActivitiesCommand,
} from "@aws-sdk/client-auto-scaling";
import {
  CloudWatchClient,
  DescribeAlarmsCommand,
  GetMetricDataCommand,
  PutMetricAlarmCommand,
  PutMetricDataCommand,
} from "@aws-sdk/client-cloudwatch";
import {
  DeleteParameterCommand,
  GetParameterCommand,
  GetParametersByPathCommand,
  PutParameterCommand,
  SSMClient,
} from "@aws-sdk/client-ssm";

import {
  CreateListenerCommand,
  CreateLoadBalancerCommand,
  CreateTargetGroupCommand,
  DeleteLoadBalancerCommand,
  DeleteTargetGroupCommand,
  DescribeListenerAttributesCommand,
  DescribeLoadBalancersCommand,
  DescribeTargetGroupsCommand,
  ElasticLoadBalancingV2Client,
  waitUntilLoadBalancerAvailable,
  waitUntilLoadBalancersDeleted,
} from "@aws-sdk/client-elastic-load-balancing-v2";

const ec2 = new EC2Client({ maxAttempts: 1 });
const sts = new STSClient({ maxAttempts: 1 });
const cloudwatch = new CloudWatchClient({ maxAttempts: 1 });
const autoscaling = new AutoScalingClient({ maxAttempts: 1 });
const elbv2 = new ElasticLoadBalancingV2Client({ maxAttempts: 1 });
const ssm = new SSMClient({ maxAttempts: 1 });

// What a caller sees of a failed request.
function failure(error) {
  return {
    name: error.name,
    fault: error.$fault,
    status: error.$metadata?.httpStatusCode,
    message: error.message,
  };
}

const scenarios = {
  async regions() {
    const { Regions } = await ec2.send(new DescribeRegionsCommand({}));
    return { regions: Regions.map((r) => r.RegionName) };
  },

  async keyPairs() {
    const name = `js-${Date.now()}`;
    const created = await ec2.send(
      new CreateKeyPairCommand({
        KeyName: name,
        KeyType: "ed25519",
        TagSpecifications: [{ ResourceType: "key-pair", Tags: [{ Key: "sdk", Value: "js-v3" }] }],
      }),
    );
    const { KeyPairs } = await ec2.send(new DescribeKeyPairsCommand({ KeyNames: [name] }));
    const byTag = await ec2.send(
      new DescribeKeyPairsCommand({ Filters: [{ Name: "tag:sdk", Values: ["js-v3"] }] }),
    );
    await ec2.send(new DeleteKeyPairCommand({ KeyName: name }));
    const afterDelete = await ec2.send(new DescribeKeyPairsCommand({})).then((r) => r.KeyPairs);
    return {
      name,
      created: { id: created.KeyPairId, material: created.KeyMaterial.split("\n")[0] },
      described: KeyPairs.map((k) => ({ id: k.KeyPairId, name: k.KeyName, type: k.KeyType, tags: k.Tags })),
      byTag: byTag.KeyPairs.map((k) => k.KeyName),
      remaining: afterDelete.map((k) => k.KeyName),
    };
  },

  async volumes() {
    const created = await ec2.send(
      new CreateVolumeCommand({ AvailabilityZone: "us-east-1a", Size: 2, VolumeType: "gp3" }),
    );
    await waitUntilVolumeAvailable(
      { client: ec2, minDelay: 1, maxDelay: 2, maxWaitTime: 120 },
      { VolumeIds: [created.VolumeId] },
    );
    const { Volumes } = await ec2.send(new DescribeVolumesCommand({ VolumeIds: [created.VolumeId] }));
    await ec2.send(new DeleteVolumeCommand({ VolumeId: created.VolumeId }));
    await waitUntilVolumeDeleted(
      { client: ec2, minDelay: 1, maxDelay: 2, maxWaitTime: 120 },
      { VolumeIds: [created.VolumeId] },
    );
    const gone = await ec2
      .send(new DescribeVolumesCommand({ VolumeIds: [created.VolumeId] }))
      .then(() => null, failure);
    const volume = Volumes[0];
    return {
      id: created.VolumeId,
      createdState: created.State,
      described: {
        id: volume.VolumeId,
        size: volume.Size,
        type: volume.VolumeType,
        zone: volume.AvailabilityZone,
        state: volume.State,
        createTime: volume.CreateTime instanceof Date ? volume.CreateTime.toISOString() : null,
      },
      afterDelete: gone,
    };
  },

  async error() {
    return ec2
      .send(new DescribeVolumesCommand({ VolumeIds: ["vol-0123456789abcdef0"] }))
      .then(() => ({ unexpected: "success" }), failure);
  },

  async cloudwatch() {
    const now = new Date();
    const metric = { Namespace: "JsSdk", MetricName: "Orders", Dimensions: [{ Name: "Shop", Value: "js" }] };
    await cloudwatch.send(
      new PutMetricDataCommand({
        Namespace: metric.Namespace,
        MetricData: [{ ...metric, Namespace: undefined, Timestamp: now, Values: [1, 2, 3], Counts: [1, 1, 2], Unit: "Count" }],
      }),
    );
    const data = await cloudwatch.send(
      new GetMetricDataCommand({
        StartTime: new Date(now.getTime() - 120_000),
        EndTime: new Date(now.getTime() + 60_000),
        MetricDataQueries: [{ Id: "orders", MetricStat: { Metric: metric, Period: 60, Stat: "Sum" } }],
      }),
    );
    await cloudwatch.send(
      new PutMetricAlarmCommand({
        AlarmName: "js-orders",
        ...metric,
        Statistic: "Sum",
        Period: 60,
        EvaluationPeriods: 1,
        Threshold: 100,
        ComparisonOperator: "GreaterThanThreshold",
      }),
    );
    const alarms = await cloudwatch.send(new DescribeAlarmsCommand({ AlarmNames: ["js-orders"] }));
    const refused = await cloudwatch
      .send(new PutMetricDataCommand({ Namespace: "AWS/EC2", MetricData: [{ MetricName: "x", Value: 1 }] }))
      .then(() => ({ unexpected: "success" }), failure);
    return {
      sums: data.MetricDataResults[0].Values,
      status: data.MetricDataResults[0].StatusCode,
      alarms: alarms.MetricAlarms.map((a) => [a.AlarmName, a.StateValue]),
      refused,
    };
  },

  async callerIdentity() {
    const { Account, Arn, UserId } = await sts.send(new GetCallerIdentityCommand({}));
    return { account: Account, arn: Arn, userId: UserId };
  },

  // A group with nothing to launch yet: created, described, refused when its sizes cross,
  // and deleted.
  async autoScaling() {
    const name = `js-${Date.now()}`;
    const { LaunchTemplate } = await ec2.send(
      new CreateLaunchTemplateCommand({
        LaunchTemplateName: name,
        LaunchTemplateData: { ImageId: "ami-0123456789abcdef0", InstanceType: "t3.micro" },
      }),
    );
    const group = {
      AutoScalingGroupName: name,
      LaunchTemplate: { LaunchTemplateId: LaunchTemplate.LaunchTemplateId, Version: "$Latest" },
      MinSize: 0,
      MaxSize: 2,
      AvailabilityZones: ["us-east-1a"],
      Tags: [{ Key: "sdk", Value: "js-v3", PropagateAtLaunch: true }],
    };
    await autoscaling.send(new CreateAutoScalingGroupCommand(group));
    const { AutoScalingGroups } = await autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }),
    );
    const crossed = await autoscaling
      .send(new CreateAutoScalingGroupCommand({ ...group, AutoScalingGroupName: `${name}-x`, MinSize: 3 }))
      .then(() => ({ unexpected: "success" }), failure);
    const { Activities } = await autoscaling.send(
      new DescribeScalingActivitiesCommand({ AutoScalingGroupName: name }),
    );
    await autoscaling.send(new DeleteAutoScalingGroupCommand({ AutoScalingGroupName: name }));
    const after = await autoscaling.send(
      new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [name] }),
    );
    await ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: LaunchTemplate.LaunchTemplateId }));
    const [described] = AutoScalingGroups;
    return {
      name,
      described: {
        name: described.AutoScalingGroupName,
        sizes: [described.MinSize, described.MaxSize, described.DesiredCapacity],
        zones: described.AvailabilityZones,
        template: described.LaunchTemplate,
        tags: described.Tags,
        created: described.CreatedTime instanceof Date,
      },
      templateId: LaunchTemplate.LaunchTemplateId,
      crossed,
      activities: Activities.length,
      remaining: after.AutoScalingGroups.length,
    };
  },

  async loadBalancer() {
    const name = `js-${Date.now()}`;
    const { Vpc } = await ec2.send(new CreateVpcCommand({ CidrBlock: "10.93.0.0/16" }));
    const { InternetGateway } = await ec2.send(new CreateInternetGatewayCommand({}));
    await ec2.send(
      new AttachInternetGatewayCommand({ InternetGatewayId: InternetGateway.InternetGatewayId, VpcId: Vpc.VpcId }),
    );
    const { RouteTables } = await ec2.send(
      new DescribeRouteTablesCommand({ Filters: [{ Name: "vpc-id", Values: [Vpc.VpcId] }] }),
    );
    await ec2.send(
      new CreateRouteCommand({
        RouteTableId: RouteTables[0].RouteTableId,
        DestinationCidrBlock: "0.0.0.0/0",
        GatewayId: InternetGateway.InternetGatewayId,
      }),
    );
    const subnets = [];
    for (const [i, zone] of [[1, "us-east-1a"], [2, "us-east-1b"]]) {
      const { Subnet } = await ec2.send(
        new CreateSubnetCommand({ VpcId: Vpc.VpcId, CidrBlock: `10.93.${i}.0/24`, AvailabilityZone: zone }),
      );
      subnets.push(Subnet.SubnetId);
    }
    const { LoadBalancers } = await elbv2.send(
      new CreateLoadBalancerCommand({ Name: name, Subnets: subnets, Tags: [{ Key: "sdk", Value: "js-v3" }] }),
    );
    const arn = LoadBalancers[0].LoadBalancerArn;
    await waitUntilLoadBalancerAvailable(
      { client: elbv2, minDelay: 1, maxWaitTime: 120 },
      { LoadBalancerArns: [arn] },
    );
    const { TargetGroups } = await elbv2.send(
      new CreateTargetGroupCommand({ Name: name, Protocol: "HTTP", Port: 80, VpcId: Vpc.VpcId, TargetType: "ip" }),
    );
    const group = TargetGroups[0].TargetGroupArn;
    const forward = [{ Type: "forward", TargetGroupArn: group }];
    const { Listeners } = await elbv2.send(
      new CreateListenerCommand({ LoadBalancerArn: arn, Protocol: "HTTP", Port: 80, DefaultActions: forward }),
    );
    const duplicate = await elbv2
      .send(new CreateListenerCommand({ LoadBalancerArn: arn, Protocol: "HTTP", Port: 80, DefaultActions: forward }))
      .then(() => ({ unexpected: "success" }), failure);
    const { Attributes } = await elbv2.send(
      new DescribeListenerAttributesCommand({ ListenerArn: Listeners[0].ListenerArn }),
    );
    const described = await elbv2.send(new DescribeLoadBalancersCommand({ Names: [name] }));
    const inUse = await elbv2
      .send(new DeleteTargetGroupCommand({ TargetGroupArn: group }))
      .then(() => ({ unexpected: "success" }), failure);
    await elbv2.send(new DeleteLoadBalancerCommand({ LoadBalancerArn: arn }));
    await waitUntilLoadBalancersDeleted({ client: elbv2, minDelay: 1, maxWaitTime: 120 }, { LoadBalancerArns: [arn] });
    await elbv2.send(new DeleteTargetGroupCommand({ TargetGroupArn: group }));
    const afterDelete = await elbv2
      .send(new DescribeTargetGroupsCommand({ TargetGroupArns: [group] }))
      .then(() => ({ unexpected: "success" }), failure);
    const [lb] = described.LoadBalancers;
    return {
      name,
      described: {
        arn: lb.LoadBalancerArn === arn,
        state: lb.State.Code,
        type: lb.Type,
        scheme: lb.Scheme,
        zones: lb.AvailabilityZones.map((z) => z.ZoneName).sort(),
        created: lb.CreatedTime instanceof Date,
      },
      listener: { port: Listeners[0].Port, protocol: Listeners[0].Protocol, attributes: Attributes },
      duplicate,
      inUse,
      afterDelete,
    };
  },

  async parameters() {
    const path = `/js-${Date.now()}`;
    const put = await ssm.send(
      new PutParameterCommand({ Name: `${path}/db/url`, Value: "postgres://db", Type: "String" }),
    );
    await ssm.send(new PutParameterCommand({ Name: `${path}/db/url`, Value: "postgres://db2", Overwrite: true }));
    const { Parameter } = await ssm.send(new GetParameterCommand({ Name: `${path}/db/url:1` }));
    const byPath = await ssm.send(new GetParametersByPathCommand({ Path: path, Recursive: true }));
    const reserved = await ssm
      .send(new PutParameterCommand({ Name: "/aws/service/mine", Value: "x", Type: "String" }))
      .then(() => ({ unexpected: "success" }), failure);
    await ssm.send(new DeleteParameterCommand({ Name: `${path}/db/url` }));
    const missing = await ssm
      .send(new GetParameterCommand({ Name: `${path}/db/url` }))
      .then(() => ({ unexpected: "success" }), failure);
    return {
      path,
      version: put.Version,
      first: { value: Parameter.Value, version: Parameter.Version, selector: Parameter.Selector,
               modified: Parameter.LastModifiedDate instanceof Date },
      byPath: byPath.Parameters.map((p) => [p.Name, p.Value, p.Version]),
      reserved,
      missing,
    };
  },

  async wrongSecret() {
    const forged = new STSClient({
      maxAttempts: 1,
      credentials: { accessKeyId: process.env.AWS_ACCESS_KEY_ID, secretAccessKey: "not-the-secret" },
    });
    return forged.send(new GetCallerIdentityCommand({})).then(() => ({ unexpected: "success" }), failure);
  },
};

const name = process.argv[2];
if (!(name in scenarios)) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
console.log(JSON.stringify(await scenarios[name]()));
