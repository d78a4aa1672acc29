// ns-3 scenarios that sample delivered throughput into a wikv trace (C interface in ns3_shim.h).
// One file: everything ns-3 (C++) stays here; the rest of wikv is C and sees only wk_ns3_run().
// Each scenario builds a fresh simulation, runs it and destroys it, so runs do not share state beyond
// ns-3's own seed settings (set on every run).
#include "net/ns3/ns3_shim.h"

#include <ns3/applications-module.h>
#include <ns3/core-module.h>
#include <ns3/internet-module.h>
#include <ns3/mobility-module.h>
#include <ns3/network-module.h>
#include <ns3/wifi-module.h>
#ifdef WIKV_NS3_LTE
#include <ns3/lte-module.h>
#include <ns3/point-to-point-module.h>
#endif

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

using namespace ns3;

namespace {

const double kWarmupS = 1.0;      // association, ARP and rate control settle before sampling starts
const uint32_t kLtePacketBytes = 1472;  // UDP payload that fits one 1500-byte IP packet (the EPC's MTU)
const uint32_t kWifiPacketBytes = 2200; // fits WifiNetDevice's 2296-byte MTU: fewer events per bit
                                        // simulated, same throughput once A-MPDUs aggregate them
const uint16_t kPort = 9;

// Samples a PacketSink's received bytes every WK_NS3_SAMPLE_S into Mbit/s.
struct Sampler {
    Ptr<PacketSink> sink;
    uint64_t last = 0;
    size_t want = 0;
    std::vector<double> mbps; // [want] delivered throughput of each 100 ms interval
    std::vector<Ptr<Object>> keep; // helpers that must outlive Simulator::Run (the LTE/EPC helpers)

    void Begin() {
        last = sink->GetTotalRx();
        Simulator::Schedule(Seconds(WK_NS3_SAMPLE_S), &Sampler::Sample, this);
    }
    void Sample() {
        uint64_t rx = sink->GetTotalRx();
        mbps.push_back(double(rx - last) * 8.0 / WK_NS3_SAMPLE_S / 1e6);
        last = rx;
        if (mbps.size() < want) Simulator::Schedule(Seconds(WK_NS3_SAMPLE_S), &Sampler::Sample, this);
    }
};

// A UDP client that offers `mbps` to dst:kPort from `src`, from `start` on: above the link's capacity,
// so the sink sees what the link delivers.
void SaturatingUdp(Ptr<Node> src, Ipv4Address dst, double mbps, uint32_t bytes, double start) {
    UdpClientHelper client(dst, kPort);
    client.SetAttribute("MaxPackets", UintegerValue(0xFFFFFFFFu)); // as good as unlimited (0 sends one in 3.37)
    client.SetAttribute("PacketSize", UintegerValue(bytes));
    client.SetAttribute("Interval", TimeValue(Seconds(bytes * 8.0 / (mbps * 1e6))));
    ApplicationContainer app = client.Install(src);
    app.Start(Seconds(start));
}

Ptr<PacketSink> InstallSink(Ptr<Node> node) {
    PacketSinkHelper sink("ns3::UdpSocketFactory", InetSocketAddress(Ipv4Address::GetAny(), kPort));
    ApplicationContainer app = sink.Install(node);
    app.Start(Seconds(0));
    return DynamicCast<PacketSink>(app.Get(0));
}

// 802.11ax, one spatial stream, 80 MHz at 5 GHz (channel 42), Thompson-sampling rate control (a
// sampling learner like Minstrel; ns-3 3.37's MinstrelHt with HE did not climb back up as the station
// returned: it stayed at ~160 Mbit/s next to the AP where it had started at ~390); log-distance path loss
// (exponent 3, the default of YansWifiChannelHelper). The station starts 1 m from the AP and walks
// along x at 1.5 m/s: away for the whole run, or away for half of it and back.
void BuildWifiWalk(bool come_back, double seconds, Sampler &s) {
    const double speed = 1.5, x0 = 1.0;
    NodeContainer ap, sta;
    ap.Create(1);
    sta.Create(1);

    YansWifiChannelHelper channel = YansWifiChannelHelper::Default();
    YansWifiPhyHelper phy;
    phy.SetChannel(channel.Create());
    phy.Set("ChannelSettings", StringValue("{42, 80, BAND_5GHZ, 0}"));
    WifiHelper wifi;
    wifi.SetStandard(WIFI_STANDARD_80211ax);
    wifi.SetRemoteStationManager("ns3::ThompsonSamplingWifiManager");
    WifiMacHelper mac;
    Ssid ssid("wikv");
    mac.SetType("ns3::StaWifiMac", "Ssid", SsidValue(ssid));
    NetDeviceContainer sta_dev = wifi.Install(phy, mac, sta);
    mac.SetType("ns3::ApWifiMac", "Ssid", SsidValue(ssid));
    NetDeviceContainer ap_dev = wifi.Install(phy, mac, ap);

    MobilityHelper fixed;
    fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    fixed.Install(ap);
    ap.Get(0)->GetObject<MobilityModel>()->SetPosition(Vector(0, 0, 0));
    MobilityHelper walking;
    walking.SetMobilityModel("ns3::WaypointMobilityModel");
    walking.Install(sta);
    Ptr<WaypointMobilityModel> way = sta.Get(0)->GetObject<WaypointMobilityModel>();
    way->AddWaypoint(Waypoint(Seconds(0), Vector(x0, 0, 0)));
    way->AddWaypoint(Waypoint(Seconds(kWarmupS), Vector(x0, 0, 0)));
    double out_s = come_back ? seconds / 2 : seconds;
    way->AddWaypoint(Waypoint(Seconds(kWarmupS + out_s), Vector(x0 + speed * out_s, 0, 0)));
    if (come_back) way->AddWaypoint(Waypoint(Seconds(kWarmupS + seconds), Vector(x0, 0, 0)));

    InternetStackHelper inet;
    inet.Install(ap);
    inet.Install(sta);
    Ipv4AddressHelper addr;
    addr.SetBase("10.1.1.0", "255.255.255.0");
    Ipv4InterfaceContainer ap_if = addr.Assign(ap_dev);
    Ipv4InterfaceContainer sta_if = addr.Assign(sta_dev);

    s.sink = InstallSink(sta.Get(0));
    SaturatingUdp(ap.Get(0), sta_if.GetAddress(0), 500.0, kWifiPacketBytes, kWarmupS / 2); // goodput peaks near 400 Mbit/s
}

#ifdef WIKV_NS3_LTE
// LTE, 20 MHz (100 RBs) downlink, one eNB at the origin, one UE driving past it at 15 m/s on a road
// 20 m from the mast, from 420 m before it to 480 m after it (60 s): throughput rises, peaks and falls,
// with coverage running out near 450 m (log-distance path loss, exponent 3). Saturating UDP from a
// remote host behind the EPC.
void BuildLteDrive(double seconds, Sampler &s) {
    (void)seconds;
    Ptr<LteHelper> lte = CreateObject<LteHelper>();
    Ptr<PointToPointEpcHelper> epc = CreateObject<PointToPointEpcHelper>();
    lte->SetEpcHelper(epc);
    s.keep.push_back(lte);
    s.keep.push_back(epc);
    lte->SetAttribute("PathlossModel", StringValue("ns3::LogDistancePropagationLossModel"));
    lte->SetEnbDeviceAttribute("DlBandwidth", UintegerValue(100));
    lte->SetEnbDeviceAttribute("UlBandwidth", UintegerValue(100));

    Ptr<Node> pgw = epc->GetPgwNode();
    NodeContainer remote;
    remote.Create(1);
    InternetStackHelper inet;
    inet.Install(remote);
    PointToPointHelper p2p;
    p2p.SetDeviceAttribute("DataRate", DataRateValue(DataRate("10Gb/s")));
    p2p.SetChannelAttribute("Delay", TimeValue(MilliSeconds(5)));
    NetDeviceContainer core = p2p.Install(pgw, remote.Get(0));
    Ipv4AddressHelper addr;
    addr.SetBase("1.0.0.0", "255.0.0.0");
    addr.Assign(core);
    Ipv4StaticRoutingHelper routing;
    routing.GetStaticRouting(remote.Get(0)->GetObject<Ipv4>())
        ->AddNetworkRouteTo(Ipv4Address("7.0.0.0"), Ipv4Mask("255.0.0.0"), 1);

    NodeContainer enb, ue;
    enb.Create(1);
    ue.Create(1);
    MobilityHelper fixed;
    fixed.SetMobilityModel("ns3::ConstantPositionMobilityModel");
    fixed.Install(enb);
    MobilityHelper driving;
    driving.SetMobilityModel("ns3::ConstantVelocityMobilityModel");
    driving.Install(ue);
    Ptr<ConstantVelocityMobilityModel> car = ue.Get(0)->GetObject<ConstantVelocityMobilityModel>();
    car->SetPosition(Vector(-420, 20, 1.5));
    car->SetVelocity(Vector(15, 0, 0));

    NetDeviceContainer enb_dev = lte->InstallEnbDevice(enb);
    NetDeviceContainer ue_dev = lte->InstallUeDevice(ue);
    inet.Install(ue);
    Ipv4InterfaceContainer ue_if = epc->AssignUeIpv4Address(ue_dev);
    routing.GetStaticRouting(ue.Get(0)->GetObject<Ipv4>())->SetDefaultRoute(epc->GetUeDefaultGatewayAddress(), 1);
    lte->Attach(ue_dev.Get(0), enb_dev.Get(0));

    s.sink = InstallSink(ue.Get(0));
    SaturatingUdp(remote.Get(0), ue_if.GetAddress(0), 150.0, kLtePacketBytes, kWarmupS / 2); // 20 MHz SISO peak ~75 Mbit/s
}
#endif

} // namespace

extern "C" int wk_ns3_available(void) { return 1; }

extern "C" int wk_ns3_run(const char *scenario, double seconds, uint32_t seed, wk_trace *tr, wk_err *err) {
    std::memset(tr, 0, sizeof *tr);
    std::string name = scenario ? scenario : "";
    if (!(seconds >= 1 && seconds <= 3600))
        return wk_err_set(err, WK_EINVAL, "ns-3 %s: --seconds %g not in [1, 3600]", name.c_str(), seconds);
    RngSeedManager::SetSeed(1);
    RngSeedManager::SetRun(seed == 0 ? 1 : seed);
    Sampler s;
    s.want = size_t(std::llround(seconds / WK_NS3_SAMPLE_S));
    if (name == "wifi-walk" || name == "wifi-walk-away") {
        BuildWifiWalk(name == "wifi-walk", seconds, s);
    } else if (name == "lte-drive") {
#ifdef WIKV_NS3_LTE
        BuildLteDrive(seconds, s);
#else
        return wk_err_set(err, WK_EUNSUPPORTED, "ns-3 lte-drive: this build has no ns-3 LTE module (ns3-lte)");
#endif
    } else {
        return wk_err_set(err, WK_EINVAL, "ns-3: unknown scenario '%s' (wifi-walk, wifi-walk-away, lte-drive)",
                          name.c_str());
    }
    Simulator::Schedule(Seconds(kWarmupS), &Sampler::Begin, &s);
    Simulator::Stop(Seconds(kWarmupS + seconds + WK_NS3_SAMPLE_S / 2));
    Simulator::Run();
    Simulator::Destroy();
    s.keep.clear();
    if (s.mbps.size() != s.want)
        return wk_err_set(err, WK_ESTATE, "ns-3 %s: got %zu samples, expected %zu", name.c_str(), s.mbps.size(),
                          s.want);
    std::vector<double> t(s.want);
    for (size_t k = 0; k < s.want; k++) t[k] = double(k) * WK_NS3_SAMPLE_S;
    char trace_name[128];
    std::snprintf(trace_name, sizeof trace_name, "ns3-%s-%gs-seed%u", name.c_str(), seconds, seed);
    return wk_trace_from_capacity(trace_name, t.data(), s.mbps.data(), s.want, double(s.want) * WK_NS3_SAMPLE_S, tr,
                                  err);
}
